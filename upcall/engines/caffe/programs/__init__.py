"""Programs that run under the Caffe root's own Python, not upcall's: one file per program.

:func:`upcall.engines.caffe.root.run_program` copies a program into a temporary directory bound
into the root, with its parameters as a JSON file beside it, and runs it with the root's python3
(Debian bullseye's Python 3.9 with pycaffe; ``UPCALL_CAFFE_PYTHON`` instead when it is set) as
``python3 PROGRAM PARAMS_FILE`` in the caller's working directory, whose modules (a net's Python
layer) import as they did when programs came on stdin. A program prints its JSON result on its
last line. So each file imports only the standard library, numpy and caffe (inside ``main``,
so that the host can import the file too), never upcall, and is written for Python 3.9
(``per-file-target-version`` in pyproject.toml holds ruff to that).

- ``init_weights.py``: the caffe engine's iteration-0 weights
- ``score.py``: the caffe engine's validation scores, one snapshot after another
- ``forward.py``: the pycaffe inference backend's forward passes (:mod:`upcall.inference.caffe`)
"""
