"""``upcall digits serve``: a DIGITS-compatible REST server that does the work with upcall.

``command.py`` (the command line), ``app.py`` (the Flask app, served by waitress), ``routing.py``,
``views.py``, ``forms.py`` (WTForms), ``jobs.py``, ``work.py`` (with ``train_child.py``, the
training child's target), ``page.py`` (``templates/``), ``paths.py`` (``--data-root``: the
server paths a client may name).
"""
