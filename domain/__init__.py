"""What may happen: the metagraph domain (types, graphs, nodes, edges). Issue 3."""
