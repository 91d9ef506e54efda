"""StopMatcher: stop sequences on a stream of text deltas, with the smallest hold-back."""

from __future__ import annotations

import itertools
import random

import pytest

from plinth.serving.stops import StopMatcher


def run(stops: list[str], parts: list[str]) -> tuple[list[str], str]:
    """Feed ``parts`` one by one; return what each feed emitted and what flush released."""
    m = StopMatcher(stops)
    emitted = [m.feed(p) for p in parts]
    return emitted, m.flush()


def joined(stops: list[str], parts: list[str]) -> str:
    emitted, tail = run(stops, parts)
    return "".join(emitted) + tail


# -- an independent oracle -------------------------------------------------------------------
def oracle(stops: list[str], text: str) -> str:
    """What a client should see: generation ends where the first stop sequence completes
    (scanning the text as it is produced); among stops completing at the same character,
    the longest one (the earliest start) is cut."""
    stops = [s for s in stops if s]
    for end in range(1, len(text) + 1):
        done = [s for s in stops if text[:end].endswith(s)]
        if done:
            return text[: end - max(len(s) for s in done)]
    return text


def oracle_holdback(stops: list[str], text: str) -> int:
    """The longest suffix of ``text`` that is a proper prefix of some stop."""
    best = 0
    for s in stops:
        for k in range(1, len(s)):
            if k <= len(text) and text.endswith(s[:k]):
                best = max(best, k)
    return best


# -- examples --------------------------------------------------------------------------------
def test_stop_within_one_delta() -> None:
    m = StopMatcher(["\n\nQ"])
    assert m.feed("The answer is 42.\n\nQ: next") == "The answer is 42."
    assert m.stopped
    assert m.flush() == ""


def test_stop_split_across_deltas_is_never_sent() -> None:
    m = StopMatcher(["\n\nQ"])
    assert m.feed("Paris") == "Paris"
    assert m.feed("\n") == ""  # could begin "\n\nQ": held back
    assert not m.stopped
    assert m.feed("\nQ") == ""  # completes the stop: the held "\n" is dropped too
    assert m.stopped
    assert m.flush() == ""


def test_stop_split_into_single_characters() -> None:
    emitted, tail = run(["END"], list("abcENDxyz"))
    assert "".join(emitted) + tail == "abc"
    assert tail == ""


def test_earliest_stop_wins() -> None:
    m = StopMatcher(["world", "lo"])
    assert m.feed("hello world") == "hel"
    assert m.stopped


def test_stop_that_completes_first_wins_whatever_the_split() -> None:
    # "bc" is complete after "abc"; the longer "abcd" would start earlier but completes later.
    assert joined(["bc", "abcd"], ["abcd"]) == "a"
    assert joined(["bc", "abcd"], list("abcd")) == "a"
    # two stops completing at the same character: the longer one is cut
    assert joined(["c", "abc"], ["xabc"]) == "x"
    assert joined(["c", "abc"], list("xabc")) == "x"


def test_held_back_text_is_released_by_flush_when_no_stop_comes() -> None:
    m = StopMatcher(["\n\nQ"])
    assert m.feed("Answer.\n") == "Answer."
    assert m.feed("\n") == ""
    assert m.flush() == "\n\n"
    assert not m.stopped


def test_held_back_text_is_released_once_it_cannot_be_a_stop() -> None:
    m = StopMatcher(["\n\nQ"])
    assert m.feed("a\n\n") == "a"
    assert m.feed("R") == "\n\nR"
    assert m.flush() == ""


def test_holdback_is_minimal() -> None:
    m = StopMatcher(["STOP"])
    # nothing here can begin "STOP": emitted at once
    assert m.feed("hello there") == "hello there"
    # only the trailing "ST" can: just that is held
    assert m.feed(" FIRST") == " FIR"
    assert m.feed("x") == "STx"
    # a character of the stop that is not at its start is no reason to wait
    assert m.feed("OP") == "OP"
    assert m.flush() == ""


def test_holdback_uses_the_longest_matching_prefix_over_all_stops() -> None:
    m = StopMatcher(["ab", "xyz"])
    assert m.feed("..xy") == ".."
    assert m.feed("a") == "xy"  # "xya" cannot be "xyz", but "a" may begin "ab"
    assert m.feed("b") == ""
    assert m.stopped


def test_nothing_is_emitted_after_a_stop() -> None:
    m = StopMatcher(["\n"])
    assert m.feed("one\ntwo") == "one"
    assert m.feed("three") == ""
    assert m.feed("\n") == ""
    assert m.flush() == ""
    assert m.stopped


@pytest.mark.parametrize("stops", [[], [""], ["", ""]])
def test_no_stops_is_a_passthrough(stops: list[str]) -> None:
    m = StopMatcher(stops)
    assert m.feed("anything \n\nQ at all") == "anything \n\nQ at all"
    assert m.feed("") == ""
    assert m.feed("more") == "more"
    assert m.flush() == ""
    assert not m.stopped


def test_empty_strings_among_real_stops_are_ignored() -> None:
    m = StopMatcher(["", "zz"])
    assert m.feed("abc") == "abc"  # an empty stop must not match at position 0
    assert m.feed("zz") == ""
    assert m.stopped


def test_unicode_stops() -> None:
    assert joined(["。"], ["你好", "。再见"]) == "你好"
    assert joined(["🙂🙂"], ["a🙂", "b🙂", "🙂c"]) == "a🙂b"


# -- property: splitting the text any way gives the same output as feeding it whole -----------
def _random_splits(rng: random.Random, text: str) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, max(0, len(text) - 1)))) if len(text) > 1 else []
    bounds = [0, *cuts, len(text)]
    parts = [text[a:b] for a, b in itertools.pairwise(bounds)]
    # empty deltas happen too (a token that decodes to nothing yet)
    for _ in range(rng.randint(0, 2)):
        parts.insert(rng.randint(0, len(parts)), "")
    return parts


def test_any_split_gives_the_same_output_as_the_whole_text() -> None:
    rng = random.Random(20240611)
    alphabet = "ab\nQ "
    for _case in range(3000):
        stops = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 3))]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        expected = oracle(stops, text)
        assert joined(stops, [text]) == expected, (stops, text)
        parts = _random_splits(rng, text)
        m = StopMatcher(stops)
        out = ""
        consumed = ""
        for p in parts:
            out += m.feed(p)
            consumed += p
            # never ahead of the truth, and never holding back more than needed
            assert expected.startswith(out), (stops, parts, out)
            if not m.stopped:
                assert len(consumed) - len(out) == oracle_holdback(stops, consumed), (stops, parts, out)
        out += m.flush()
        assert out == expected, (stops, parts)
        assert m.stopped == any(s in text for s in stops if s), (stops, text)
