"""circuitdb.attribution."""
