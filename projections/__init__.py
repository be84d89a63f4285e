"""What is read: projectors over tenant streams (metagraph tables, flowgraph views). Issue 4."""
