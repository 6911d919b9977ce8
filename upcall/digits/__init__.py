"""DIGITS's REST API from the client side: ``client.py`` (requests to a DIGITS server),
``fields.py`` (a dataset or job as DIGITS's form fields), ``jobfile.py`` (``digits_jobs/`` request
files), ``cli.py`` (``upcall digits ...``). The server (``digits serve``) is
:mod:`upcall.digits_server`.
"""
