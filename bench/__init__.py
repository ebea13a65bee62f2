"""Benchmarks of the chart: ``bench/run`` (see ``bench/cli.py``)."""
