"""PII/PHI recognizers: every entity type found with its exact span, look-alikes refused."""

from __future__ import annotations

import pytest

from plinth.domain.guardrails import Direction
from plinth.guardrails.base import DetectContext, Resources
from plinth.guardrails.pii import PiiDetector, PiiOptions, card_issuer, iban_ok, luhn_ok, ssn_ok

ACME = [
    {"type": "MEMBER_ID", "regex": r"(?<![\w-])ACM[- ]?\d{7}(?![\w-])", "score": 0.97},
    {"type": "POLICY_NUMBER", "regex": r"(?<![\w-])POL-[A-Z0-9]{4}-[A-Z0-9]{4}(?![\w-])", "score": 0.97},
]


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    return PiiDetector("pii", PiiOptions(patterns=ACME), Resources())


def spans(d: PiiDetector, text: str) -> set[tuple[str, str]]:
    return {(f.label, text[f.start : f.end]) for f in d.detect(text, DetectContext(direction=Direction.INPUT))}  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("write to olga.petrova+claims@mail.example.net please", ("EMAIL", "olga.petrova+claims@mail.example.net")),
        ("call me on (617) 253-1000 tonight", ("PHONE", "(617) 253-1000")),
        ("my cell: +44 20 7946 0321", ("PHONE", "+44 20 7946 0321")),
        ("phone 503.221.7788", ("PHONE", "503.221.7788")),
        ("my new cell is 867-5309", ("PHONE", "867-5309")),
        ("SSN: 512 38 9921", ("US_SSN", "512 38 9921")),
        ("social security number 512-38-9921.", ("US_SSN", "512-38-9921")),
        ("My SSN is 123-45-6789", ("US_SSN", "123-45-6789")),  # a specimen number, but called an SSN
        ("card 4111-1111-1111-1111 exp 10/28", ("CREDIT_CARD", "4111-1111-1111-1111")),
        ("amex 3714 496353 98431", ("CREDIT_CARD", "3714 496353 98431")),
        ("IBAN NL91 ABNA 0417 1643 00, thanks", ("IBAN", "NL91 ABNA 0417 1643 00")),
        ("es ES9121000418450200051332", ("IBAN", "ES9121000418450200051332")),
        ("login from 10.20.30.40:8443 failed", ("IP_ADDRESS", "10.20.30.40")),
        ("the address fe80::1ff:fe23:4567:890a is mine", ("IP_ADDRESS", "fe80::1ff:fe23:4567:890a")),
        ("I was born on 3 March 1961 in Lagos", ("DATE_OF_BIRTH", "3 March 1961")),
        ("DOB 1961-03-03", ("DATE_OF_BIRTH", "1961-03-03")),
        ("geboren am 12.05.1977 in Köln", ("DATE_OF_BIRTH", "12.05.1977")),
        (
            "send it to 4521 Old Mill Road, Apt 7B, Springfield, IL 62704 thanks",
            ("ADDRESS", "4521 Old Mill Road, Apt 7B, Springfield, IL 62704"),
        ),
        ("mail to PO Box 1187, Fargo, ND 58107", ("ADDRESS", "PO Box 1187, Fargo, ND 58107")),
        ("member ACM-7730021 here", ("MEMBER_ID", "ACM-7730021")),
        ("policy POL-8Q2Z-77AB is active", ("POLICY_NUMBER", "POL-8Q2Z-77AB")),
        ("the ER gave me MRN-4471029 on the wristband", ("MRN", "MRN-4471029")),
        ("medical record number: 90817265", ("MRN", "90817265")),
        ("My name is Oksana Hrytsenko and I need help", ("PERSON", "Oksana Hrytsenko")),
        ("Dr. Tunde Bakare referred me", ("PERSON", "Tunde Bakare")),
        ("my daughter Amaia has a fever", ("PERSON", "Amaia")),
        ("Can Wanjiru Kamau pick up my prescription?", ("PERSON", "Wanjiru Kamau")),
        ("Please ask Pedro Alvarez's nurse", ("PERSON", "Pedro Alvarez")),
        ("我叫王建国，我的理赔呢", ("PERSON", "王建国")),
    ],
)
def test_entity_found_with_its_exact_span(pii: PiiDetector, text: str, expected: tuple[str, str]) -> None:
    assert expected in spans(pii, text)


@pytest.mark.parametrize(
    "text",
    [
        "I paid $1,250.00 on 03/14/2025 for claim 2024-118-4471",  # money, a date of service, a claim number
        "card ending in 1111, exp 09/27",  # last four digits and an expiry date
        "4111 1111 1111 1112 was declined",  # fails Luhn
        "IBAN DE89 3704 0044 0532 0130 01",  # wrong check digits
        "SSN 000-12-3456 and 666-12-3456 and 912-34-5678",  # never issued
        "version 4.18.2.1 of the app",  # a version, not an IP
        "my appointment is on 04/18/2025 at 10:30",  # not a birth date
        "Is CPT 97110 covered? ICD-10 M54.5, NDC 0002-8215-01, group 77123",
        "I'm 34 weeks pregnant, zip 60614, 12 sessions",
        "Acme Health and Riverside Medical Center approved it",  # organisations
        "Does the Gold plan cover Ozempic in March?",
        "The 2025 formulary lists 300 drugs",
    ],
)
def test_look_alikes_are_not_reported(pii: PiiDetector, text: str) -> None:
    assert spans(pii, text) == set()


def test_validators() -> None:
    assert luhn_ok("4242424242424242") and not luhn_ok("4242424242424241")
    assert card_issuer("378282246310005") == "amex" and card_issuer("9999999999999995") is None
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82WEST1234569876543")  # wrong length for GB
    assert ssn_ok("512", "38", "9921") and not ssn_ok("078", "05", "1120")  # the famous specimen number
    assert ssn_ok("123", "45", "6789", stated=True) and not ssn_ok("666", "12", "3456", stated=True)


def test_entities_subset_and_allow_list() -> None:
    d = PiiDetector("pii", PiiOptions(entities=["EMAIL"], allow=["help@acme.example"]), Resources())
    text = "Mail help@acme.example or me: ana.ruiz@example.org, SSN 512-38-9921"
    assert spans(d, text) == {("EMAIL", "ana.ruiz@example.org")}


def test_custom_pattern_with_context() -> None:
    opts = PiiOptions(
        entities=["EMPLOYEE_ID"],
        patterns=[{"type": "EMPLOYEE_ID", "regex": r"\b\d{6}\b", "context": ["employee"], "score": 0.9}],
    )
    d = PiiDetector("pii", opts, Resources())
    assert spans(d, "employee number 483920 asked") == {("EMPLOYEE_ID", "483920")}
    assert spans(d, "order 483920 shipped") == set()


def test_a_catastrophic_custom_pattern_times_out_instead_of_hanging() -> None:
    import time

    opts = PiiOptions(entities=["X_ID"], patterns=[{"type": "X_ID", "regex": r"(a+)+$"}])
    d = PiiDetector("pii", opts, Resources())
    t0 = time.monotonic()
    assert spans(d, "a" * 40 + "!") == set()
    # unbounded, (a+)+$ on 41 characters backtracks about 2**40 times (hours); the bound is loose
    # enough for a busy machine and still tells the two apart
    assert time.monotonic() - t0 < 30.0


def test_unknown_entity_type_is_refused() -> None:
    with pytest.raises(ValueError, match="NOT_A_TYPE"):
        PiiDetector("pii", PiiOptions(entities=["NOT_A_TYPE"]), Resources())


def test_pii_meets_the_targets_on_the_development_set() -> None:
    """Recall >= 0.95 and precision >= 0.90 over all entity types (exact span match)."""
    from plinth.guardrails.evaluation import evaluate, read_jsonl
    from tests.unit.guardrails.helpers import ACME_POLICY, build_guard, shared_set

    report = evaluate(build_guard(ACME_POLICY.read_text()), read_jsonl(shared_set("pii")))
    assert report.overall.recall >= 0.95, report.false_negatives
    assert report.overall.precision >= 0.90, report.false_positives


def test_pii_on_plinths_own_labelled_examples() -> None:
    """The project's own labelled examples (examples/guardrails/labelled/pii.jsonl), written
    apart from the shared sets: other names, formats and languages."""
    from plinth.guardrails.evaluation import evaluate, read_jsonl
    from tests.unit.guardrails.helpers import ACME_POLICY, REPO, build_guard

    report = evaluate(build_guard(ACME_POLICY.read_text()), read_jsonl(REPO / "examples/guardrails/labelled/pii.jsonl"))
    assert report.overall.recall >= 0.95, report.false_negatives
    assert report.overall.precision >= 0.90, report.false_positives
