"""Class names: the one rule for which class is the positive one (labels.txt is read by
:func:`upcall.data.listsfolder.read_labels`).

The positive class is the one detection scores, and the report's thresholds, recall and
precision are about (:func:`positive_index`):

1. a class named ``whale`` (any case): the name upcall's datasets and the whale tutorial's
   labels.txt give the up-call class;
2. else, with two classes, the one that is not a negative: a negative is named ``not-X``,
   ``no-X`` or ``non-X`` (``-``, ``_`` or a space), ``notX`` beside a class ``X``, or one of
   ``negative``, ``noise``, ``background``, ``other``, ``none``;
3. else the last class, as DIGITS's and upcall's lists give the positive class the last label.

Every job upcall makes is ("not-whale", "whale"): rules 1 and 3 agree on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from upcall.errors import UpcallError

POSITIVE_NAME = "whale"
_NEGATED = re.compile(r"(not|non|no)[-_ ](?P<rest>.+)", re.IGNORECASE)
_NEGATIVES = frozenset({"negative", "noise", "background", "other", "none"})


def is_negative(name: str, others: Sequence[str] = ()) -> bool:
    """Whether ``name`` reads as the negative class (rule 2 of the module doc)."""
    low = name.strip().lower()
    if low in _NEGATIVES or _NEGATED.fullmatch(low):
        return True
    return any(low == "not" + o.strip().lower() for o in others)


def positive_index(class_names: Sequence[str]) -> int:
    """The index of the positive class in ``class_names`` (see the module doc)."""
    names = [n.strip().lower() for n in class_names]
    if not names:
        raise UpcallError("a model with no classes has no positive class")
    if POSITIVE_NAME in names:
        return names.index(POSITIVE_NAME)
    if len(names) == 2:
        negative = [is_negative(n, names) for n in names]
        if negative.count(True) == 1:
            return negative.index(False)
    return len(names) - 1
