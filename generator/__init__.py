"""Generator of the VirtEngine observability Helm chart.

Pipeline (one direction of imports): cli -> build (values -> content stages
-> schema) -> emit. See README.md for the layout.
"""
