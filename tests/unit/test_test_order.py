"""The longest-first list of test files (tests/support/order.py) names test files that exist,
each once, so a renamed or deleted file cannot silently fall back to the end of the run."""

from __future__ import annotations

from pathlib import Path

from tests.support.order import LONGEST_FIRST

ROOT = Path(__file__).resolve().parents[2]


def test_every_listed_file_is_a_test_file_of_the_suite() -> None:
    missing = [p for p in LONGEST_FIRST if not (ROOT / p).is_file()]
    assert not missing, f"tests/support/order.py lists files that do not exist: {missing}"
    assert all(Path(p).name.startswith("test_") and p.startswith("tests/") for p in LONGEST_FIRST)
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST), "a file listed twice"
