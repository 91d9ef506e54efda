"""Numbers the database cannot hold are a 400 (``invalid_request``), never a driver exception:
sqlite3 raises a bare OverflowError for an int past 64 bits, Postgres a DataError for a value
out of its column's range. The API bounds its numbers first; this is the net under it, and the
CLI and the services rely on it too. Run on SQLite and on Postgres."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from plinth.domain.jobs import PriorityClass
from plinth.domain.numbers import INT64_MAX, whole_number
from plinth.errors import ErrorCode, PlinthError

BIG = [2**64, 10**30, INT64_MAX + 1]


@pytest.mark.parametrize("value", BIG)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s, v: s.get_model_version("m", v), id="registry version"),
        pytest.param(lambda s, v: s.get_revision("d", v), id="deployment revision"),
        pytest.param(lambda s, v: s.list_audit(before_id=v, limit=10), id="audit cursor"),
        pytest.param(lambda s, v: s.add_priority_class(PriorityClass("huge", v)), id="write"),
    ],
)
def test_out_of_range_numbers_are_invalid_requests(store: Any, call: Callable[[Any, int], Any], value: int) -> None:
    with pytest.raises(PlinthError) as e:
        call(store, value)
    assert e.value.code is ErrorCode.INVALID_REQUEST, e.value.message
    if store.dialect_name == "sqlite":  # the message names the number (Postgres names the column type)
        assert str(value) in e.value.message


def test_the_store_still_works_after_a_refused_number(store: Any) -> None:
    with pytest.raises(PlinthError):
        store.add_priority_class(PriorityClass("huge", 2**64))
    stored = store.add_priority_class(PriorityClass("fine", 7))
    assert stored.value == 7


def test_whole_number() -> None:
    assert whole_number("7") == 7
    assert whole_number("007") == 7
    assert whole_number(str(INT64_MAX)) == INT64_MAX
    for bad in ["", "-1", "+1", " 1", "1 ", "1.0", "²", "١", "0x1", str(INT64_MAX + 1), "9" * 5000]:  # noqa: RUF001 - a non-ASCII digit on purpose
        assert whole_number(bad) is None, bad
    assert whole_number("0", minimum=1) is None
    assert whole_number("11", maximum=10) is None
