"""The public façade and command-line entry point of the graph store."""
