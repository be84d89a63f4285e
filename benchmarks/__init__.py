"""Side-by-side benchmarks: ``python -m benchmarks SUITE [--quick]`` (see README.md)."""
