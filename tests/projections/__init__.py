"""Tests of projections/: projectors, the metagraph tables, the runner."""
