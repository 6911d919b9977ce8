"""Reports: what trained job folders say, whichever engine made them.

In: job folders (``metrics.jsonl``, ``summary.json``, snapshots). Out: comparison reports
(``report.py``: the table, plot and report.html; ``scores.py``, ``entries.py``, ``figures.py``,
``html.py``). Sits above the engines; loads an inference backend only for per-clip scores.
"""
