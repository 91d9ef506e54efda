"""Output redaction on streamed answers: an entity split across chunks is still redacted,
what is sent equals the redaction of the whole text, and only a small tail is held back."""

from __future__ import annotations

import random

import pytest

from plinth.domain.guardrails import Action, Direction, Finding
from plinth.guardrails.engine import Guard
from tests.unit.guardrails.helpers import build_guard

POLICY = {
    "name": "stream-test",
    "rules": [
        {"detector": "pii", "on": ["output"], "action": "redact", "patterns": [{"type": "MEMBER_ID", "regex": r"ACM-\d{7}"}]},
        {"detector": "secrets", "on": ["output"], "action": "redact"},
        {"detector": "toxicity", "on": ["output"], "action": "block", "safe_answer": "[withheld]"},
    ],
}

ANSWERS = [
    "Your SSN on file is 512-38-9921 and the member ID is ACM-5324806.",
    "Call us at (617) 253-1000 or write to claims.team@example.org, we answer within 2 days.",
    "Hello Oksana Hrytsenko, your card 4111 1111 1111 1111 was charged $25.00 today.",
    "Refunds go to IBAN NL91 ABNA 0417 1643 00 within 10 business days.",
    "The key is ghp_abcdefghijklmnopqrstuvwxyz0123456789AB, keep it safe.",
    "We will mail the card to 4521 Old Mill Road, Apt 7B, Springfield, IL 62704 next week.",
    "Nothing personal here: your deductible is $1,500 and your copay is $30.",
]


@pytest.fixture(scope="module")
def guard() -> Guard:
    return build_guard(POLICY)


def stream(guard: Guard, pieces: list[str]) -> tuple[str, list[Finding], str | None]:
    found: list[Finding] = []
    f = guard.stream_filter(found.extend)
    assert f is not None
    out = []
    for p in pieces:
        out.append(f.feed(p))
        if f.halt is not None:
            return "".join(out), found, f.halt
    out.append(f.flush())
    return "".join(out), found, f.halt


def whole(guard: Guard, text: str) -> str:
    return guard.check(text, Direction.OUTPUT).text


def test_an_ssn_split_across_chunks_is_redacted(guard: Guard) -> None:
    text, found, halt = stream(guard, ["My SSN is 512-38-", "9921, as you asked."])
    assert halt is None
    assert text == "My SSN is <US_SSN>, as you asked."
    assert "9921" not in text and "512-38" not in text
    assert [(f.label, f.start, f.end) for f in found] == [("US_SSN", 10, 21)]


@pytest.mark.parametrize("answer", ANSWERS)
def test_every_split_point_gives_the_redaction_of_the_whole_answer(guard: Guard, answer: str) -> None:
    expected = whole(guard, answer)
    for cut in range(1, len(answer)):
        assert stream(guard, [answer[:cut], answer[cut:]])[0] == expected, cut


@pytest.mark.parametrize("answer", ANSWERS)
def test_random_token_sized_chunks(guard: Guard, answer: str) -> None:
    rng = random.Random(answer)
    expected = whole(guard, answer)
    for _ in range(30):
        pieces, i = [], 0
        while i < len(answer):
            n = rng.randint(1, 6)
            pieces.append(answer[i : i + n])
            i += n
        assert stream(guard, pieces)[0] == expected


def test_character_by_character(guard: Guard) -> None:
    for answer in ANSWERS:
        assert stream(guard, list(answer))[0] == whole(guard, answer)


def test_plain_text_is_released_at_once_but_for_the_word_in_progress(guard: Guard) -> None:
    f = guard.stream_filter(lambda fs: None)
    assert f is not None
    # toxicity blocks on output, so whole sentences are held until they end
    assert f.feed("Your deductible is met. ") == "Your deductible is met. "
    assert f.feed("The next vis") == ""
    out = f.feed("it is free. You")
    assert out == "The next visit is free. "
    assert f.flush() == "You"


def test_holdback_without_sentence_rules_is_the_trailing_token() -> None:
    g = build_guard({"name": "pii-only", "rules": [{"detector": "pii", "on": ["output"], "action": "redact"}]})
    f = g.stream_filter(lambda fs: None)
    assert f is not None
    assert f.feed("Your copay is ") == "Your copay is "
    assert f.feed("thirty doll") == "thirty "  # the word in progress could become an e-mail address
    assert f.feed("ars and your number is 512-") == "dollars and your number is "
    assert f.feed("38-9921 ok") == "<US_SSN> "
    assert f.flush() == "ok"


def test_a_number_in_progress_is_held_across_spaces() -> None:
    g = build_guard({"name": "pii-only", "rules": [{"detector": "pii", "on": ["output"], "action": "redact"}]})
    f = g.stream_filter(lambda fs: None)
    assert f is not None
    sent = f.feed("call +1 646 555 ")
    assert "646" not in sent and "555" not in sent
    sent += f.feed("0108 now")
    sent += f.flush()
    assert sent == "call <PHONE> now"


def test_a_toxic_sentence_halts_the_stream_before_it_is_sent(guard: Guard) -> None:
    text, found, halt = stream(guard, ["Sure. ", "You are a worthless ", "idiot and I hate you. ", "More text."])
    assert halt == "[withheld]"
    assert "idiot" not in text and "worthless" not in text
    assert any(f.label == "toxic" and f.action is Action.BLOCK for f in found)


def test_a_private_key_block_is_held_until_it_ends() -> None:
    g = build_guard({"name": "s", "rules": [{"detector": "secrets", "on": ["output"], "action": "redact"}]})
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"
    f = g.stream_filter(lambda fs: None)
    assert f is not None
    sent = ""
    for line in ("Here it is:\n", *[ln + "\n" for ln in key.split("\n")], "Done."):
        sent += f.feed(line)
        assert "MIIE" not in sent and "BKcw" not in sent
    sent += f.flush()
    assert sent == "Here it is:\n<PRIVATE_KEY>\nDone."
