"""DIGITS: talk to a DIGITS server over its REST API, or be one.

``server`` (with ``jobs``, ``forms``, ``work``, ``views``, ``page``): ``upcall digits serve``, a
DIGITS 6-compatible server whose jobs upcall runs (``serve``, ``make_app``).
"""
