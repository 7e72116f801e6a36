"""circuitdb.store."""
