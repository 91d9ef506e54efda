"""Normalisation before span detection: each path (NFKC/full-width, zero-width characters,
confusable letters, [at]/[dot], spaced characters) is undone, and a value found in the
normalised text is reported — and redacted — on the exact span of the original text."""

from __future__ import annotations

import pytest

from plinth.guardrails.base import DetectContext, Resources
from plinth.guardrails.normalize import normalize
from plinth.guardrails.pii import PiiDetector, PiiOptions
from tests.unit.guardrails.helpers import build_guard


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    return PiiDetector("pii", PiiOptions(), Resources())


def found(d: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(f.label, text[f.start : f.end]) for f in d.detect(text, DetectContext()) if f.start is not None and f.end is not None]


@pytest.mark.parametrize(
    ("text", "normal", "value"),
    [
        (
            "write to ａｎａ．ｂｅｌｌｏ＠ｅｘａｍｐｌｅ．ｏｒｇ today",
            "ana.bello@example.org",
            "ａｎａ．ｂｅｌｌｏ＠ｅｘａｍｐｌｅ．ｏｒｇ",
        ),
        ("mail le\u200bo.\u200dkim@example.com now", "leo.kim@example.com", "le\u200bo.\u200dkim@example.com"),
        ("mail mаrk.lee@example.com now", "mark.lee@example.com", "mаrk.lee@example.com"),  # Cyrillic а
        ("mail rosa.diaz [at] example [dot] com thanks", "rosa.diaz@example.com", "rosa.diaz [at] example [dot] com"),
        ("mail rosa.diaz (AT) example (DOT) net thanks", "rosa.diaz@example.net", "rosa.diaz (AT) example (DOT) net"),
        ("mail rosa.diaz at example dot co dot uk thanks", "rosa.diaz@example.co.uk", "rosa.diaz at example dot co dot uk"),
        ("ssn 5 3 4 - 1 2 - 7 7 8 9 ok", "534-12-7789", "5 3 4 - 1 2 - 7 7 8 9"),
        ("mail m i k a @ e x a m p l e . c o m ok", "mika@example.com", "m i k a @ e x a m p l e . c o m"),
    ],
)
def test_each_normalisation_maps_back_to_the_original_span(text: str, normal: str, value: str) -> None:
    n = normalize(text)
    assert n.changed
    i = n.text.index(normal)
    s, e = n.original_span(i, i + len(normal))
    assert text[s:e] == value


def test_plain_text_is_left_alone() -> None:
    for text in ("Is my knee surgery covered?", "I paid $35 on 3/4/2026, claim 8812.", "Wie viel kostet das?", "我的保险包括体检吗"):
        n = normalize(text)
        assert not n.changed and n.text == text


def test_letters_spaced_apart_are_words_not_values() -> None:
    # spacing is undone only in runs that hold a digit or an '@' (the classifiers fold words)
    assert normalize("I said n o t h i n g wrong").text == "I said n o t h i n g wrong"


def test_greek_and_cyrillic_words_stay_as_written() -> None:
    assert normalize("Меня зовут Ольга, email olga@example.com").text == "Меня зовут Ольга, email olga@example.com"


@pytest.mark.parametrize(
    ("text", "label", "value"),
    [
        ("write to ａｎａ．ｂｅｌｌｏ＠ｅｘａｍｐｌｅ．ｏｒｇ today", "EMAIL", "ａｎａ．ｂｅｌｌｏ＠ｅｘａｍｐｌｅ．ｏｒｇ"),
        ("my email: rosa.diaz [at] example [dot] com, thanks", "EMAIL", "rosa.diaz [at] example [dot] com"),
        ("email: te\u200bo@example.com", "EMAIL", "te\u200bo@example.com"),
        ("SSN: 5 3 4 - 1 2 - 7 7 8 9 (spaced)", "US_SSN", "5 3 4 - 1 2 - 7 7 8 9"),
        ("my ssn is ５３４-１２-７７８９", "US_SSN", "５３４-１２-７７８９"),
        ("card 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 please", "CREDIT_CARD", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
        ("Visa 4111.1111.1111.1111 exp 09/28", "CREDIT_CARD", "4111.1111.1111.1111"),
    ],
)
def test_obfuscated_values_are_found_on_their_original_span(pii: PiiDetector, text: str, label: str, value: str) -> None:
    assert (label, value) in found(pii, text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Rufen Sie mich an unter 030 1234567.", "030 1234567"),
        ("Meine Handynummer: 0170 1234567", "0170 1234567"),
        ("Appelez-moi au 06 12 34 56 78 demain.", "06 12 34 56 78"),
        ("Mi móvil es 612 345 678.", "612 345 678"),
        ("Il mio cellulare è 347 123 4567.", "347 123 4567"),
        ("Mijn nummer is 06-12345678.", "06-12345678"),
        ("O meu telemóvel é 912 345 678.", "912 345 678"),
        ("我的手机 139 1234 5678", "139 1234 5678"),
        ("UK office: call 020 7946 0958", "020 7946 0958"),
    ],
)
def test_national_phone_formats(pii: PiiDetector, text: str, value: str) -> None:
    assert ("PHONE", value) in found(pii, text)


def test_number_like_values_without_a_phone_cue_stay_unlabelled(pii: PiiDetector) -> None:
    for text in ("Claim 0012 3456789 was paid.", "Reference 612345678 from the call.", "Group number 0151 2345 on the card."):
        assert not [v for label, v in found(pii, text) if label == "PHONE"], text


@pytest.mark.parametrize("country", ["ES", "IT", "NL", "PT", "BE", "AT"])
def test_european_ibans(pii: PiiDetector, country: str) -> None:
    bban = {"ES": "21000418450200051332", "IT": "X0542811101000000123456", "NL": "ABNA0417164300", "PT": "000201231234567890154",
            "BE": "539007547034", "AT": "1904300234573201"}[country]  # fmt: skip
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    iban = f"{country}{98 - num % 97:02d}{bban}"
    grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    for value in (iban, grouped):
        assert ("IBAN", value) in found(pii, f"Refund to {value}, thanks.")


def test_redaction_cuts_the_original_span() -> None:
    guard = build_guard(
        {
            "apiVersion": "plinth/v1",
            "kind": "GuardrailPolicy",
            "name": "t",
            "rules": [{"detector": "pii", "on": ["input"], "action": "redact"}],
        }
    )
    text = "Hi, reach me at rosa.diaz [at] example [dot] com or ５３４-１２-７７８９ (SSN)."
    rule = guard.rules[0]
    spans = sorted((f.start, f.end) for f in rule.run(text, DetectContext()) if f.start is not None)
    redacted = text
    for s, e in reversed(spans):
        redacted = redacted[:s] + "<X>" + redacted[e:]
    assert redacted == "Hi, reach me at <X> or <X> (SSN)."


@pytest.mark.parametrize(
    "answer",
    [
        "Write to rosa.diaz [at] example [dot] com today.",
        "Her SSN is 5 3 4 - 1 2 - 7 7 8 9 on file.",
        "Mail ａｎａ．ｂｅｌｌｏ＠ｅｘａｍｐｌｅ．ｏｒｇ now.",
        "Email te\u200bo@example.com now.",
        "Call 06 12 34 56 78 today.",
    ],
)
def test_streamed_obfuscated_values_are_redacted_at_every_split_point(answer: str) -> None:
    from plinth.domain.guardrails import Direction

    guard = build_guard({"name": "pii-only", "rules": [{"detector": "pii", "on": ["output"], "action": "redact"}]})
    expected = guard.check(answer, Direction.OUTPUT).text
    assert "<" in expected
    for cut in range(1, len(answer)):
        f = guard.stream_filter(lambda fs: None)
        assert f is not None
        assert f.feed(answer[:cut]) + f.feed(answer[cut:]) + f.flush() == expected, cut
