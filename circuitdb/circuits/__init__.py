"""circuitdb.circuits."""
