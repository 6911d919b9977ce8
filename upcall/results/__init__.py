"""Results: what a trained job folder says, whichever engine made it.

In: job folders (``metrics.jsonl``, ``summary.json``, snapshots). Out: the job folder's writer and
readers (``jobdir``), comparison reports (``report``) and class probabilities for new inputs
(``classify``). Never imports torch at import time: inference backends load lazily.
"""
