"""Whole numbers as people write them (versions, revisions, ids, offsets), bounded by what the
metadata store can hold: SQLite's INTEGER and Postgres' ``bigint`` are signed 64-bit, so a
larger number can never name a stored row and must be refused before it reaches a driver.
"""

from __future__ import annotations

#: the largest integer the metadata store holds (2**63 - 1)
INT64_MAX = 2**63 - 1
#: the largest integer the API takes where the store would hold 64 bits (ids, offsets, sizes):
#: every JSON client reads it exactly (JavaScript's Number.MAX_SAFE_INTEGER), and so does every
#: JSON Schema tool that holds numbers as doubles (2**63 - 1 would round up past the bound)
API_INT_MAX = 2**53 - 1
#: the largest value of a column declared ``Integer`` (Postgres ``integer``, 32 bits)
INT32_MAX = 2**31 - 1
#: the largest version or revision number (model, dataset, policy and knowledge-base versions,
#: deployment revisions are ``Integer`` columns)
VERSION_MAX = INT32_MAX


def whole_number(text: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int | None:
    """``int(text)`` when ``text`` is ASCII digits only and the value lies in
    ``[minimum, maximum]``; otherwise None.

    ``str.isdigit`` is not enough: it accepts ``'²'`` and other digits ``int()`` refuses,
    and it puts no bound on the value.
    """
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text.lstrip("0")) > len(str(maximum)):  # no need to build a huge int to refuse it
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None
