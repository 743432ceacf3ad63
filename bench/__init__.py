"""Benchmarks (not tests): `python -m bench.run` writes a Markdown report and a JSON file of figures."""
