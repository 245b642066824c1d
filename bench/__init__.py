"""Benchmarks of the function app, kept apart from the tests: `python -m bench` (or `make bench`).

The machines are small and noisy, so every benchmark reports ratios of figures measured in
the same run (interleaved, so noise hits both sides), never absolute times against a budget.
Results are printed as tables; `--json PATH` also writes them for `docs/benchmarks.md`.
"""
