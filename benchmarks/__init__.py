"""Benchmarks for Veilbox: ``python -m benchmarks [--full | --smoke] [--out DIR]``.

Every comparison is paired: the two sides alternate round by round in one run and the
median of the per-round ratios is reported, because absolute times on a shared machine
drift between runs. Each benchmark also checks its answers, so a fast wrong path cannot
win. Results go to ``benchmarks/results/latest.json`` and ``latest.md``, and the table is
copied into the README between the ``bench`` markers.
"""
