"""A policy's allow list of public values: the organisation's own phone numbers and service
names are recorded as ``allow`` findings instead of being redacted or blocking, in every
direction and while streaming; everything else is redacted as before. Validation reports
every problem at once, and the list is part of the versioned policy document."""

from __future__ import annotations

from typing import Any

import pytest

from plinth.domain.guardrails import Action, Direction, Finding
from plinth.errors import PlinthError
from plinth.guardrails.engine import Guard
from plinth.guardrails.policy import AllowEntry, canonical, digest, parse_document, validate_policy
from tests.unit.guardrails.helpers import ACME_POLICY, build_guard

MEMBER_SERVICES = "1-800-555-0142"
NURSE_LINE = "1-800-555-0177"
POLICY: dict[str, Any] = {
    "name": "allow-test",
    "rules": [{"detector": "pii", "on": ["input", "output"], "action": "redact"}],
    "allow": [
        {"value": MEMBER_SERVICES, "labels": ["PHONE"], "note": "Member Services"},
        "Nurse Line",
    ],
}


@pytest.fixture(scope="module")
def guard() -> Guard:
    return build_guard(POLICY)


def _out(guard: Guard, text: str, direction: Direction = Direction.OUTPUT) -> tuple[str, list[tuple[str, str, str]]]:
    r = guard.check(text, direction)
    return r.text, [(f.label, f.action.value, text[f.start : f.end]) for f in r.findings if f.start is not None and f.end is not None]


# -- the document ----------------------------------------------------------------------------
def test_entries_are_strings_or_mappings_and_the_match_follows_the_value() -> None:
    spec = validate_policy(POLICY)
    assert [(a.value, a.labels, a.match) for a in spec.allow] == [(MEMBER_SERVICES, ["PHONE"], "digits"), ("Nurse Line", [], "text")]
    assert AllowEntry(value="+1 (800) 555-0142").match == "digits"
    assert AllowEntry(value="  Acme   Virtual\tCare ").value == "Acme Virtual Care"
    assert AllowEntry(value="18005550142", match="text").match == "text"


def test_every_problem_is_reported_at_once_naming_the_entry() -> None:
    doc = {
        "name": "bad-allow",
        "rules": [{"detector": "pii"}, {"detector": "toxicity", "id": "tox", "action": "allow"}],
        "allow": [
            {"value": "1-800", "match": "digits"},
            {"value": "Nurse Line", "labels": ["NURSE"]},
            {"value": ""},
            {"value": "x", "colour": "blue"},
            42.5,
            "...",
        ],
    }
    with pytest.raises(PlinthError) as e:
        validate_policy(doc)
    errors = e.value.details["errors"]
    text = "; ".join(errors)
    assert "rules[1] (tox).action: 'allow' is not a rule action" in text
    assert "allow[0]: value '1-800': a digits match needs 5 to 20 digits, not 4" in text
    assert "allow[1].labels: unknown label(s) NURSE; the span rules report" in text and "PHONE" in text
    assert any(x.startswith("allow[2].value:") for x in errors)
    assert any(x.startswith("allow[3].colour:") for x in errors)
    assert "allow[4]: must be a string or a mapping with 'value', not float" in text
    assert "allow[5]: value '...' has no letter or digit" in text
    with pytest.raises(PlinthError, match="no enabled span rule"):
        validate_policy({"name": "no-spans", "rules": [{"detector": "toxicity"}], "allow": ["Nurse Line"]})
    with pytest.raises(PlinthError, match="allow: must be a list"):
        validate_policy({"name": "not-a-list", "rules": [{"detector": "pii"}], "allow": "Nurse Line"})


def test_the_list_is_versioned_with_the_policy_and_absent_lists_keep_old_digests() -> None:
    plain = {"name": "p", "rules": [{"detector": "pii"}]}
    body = canonical(validate_policy(plain))
    assert "allow" not in body  # policies stored before allow lists keep their digest
    with_allow = canonical(validate_policy({**plain, "allow": ["Nurse Line"]}))
    assert with_allow["allow"] == [{"value": "Nurse Line", "labels": [], "match": "text", "note": ""}]
    assert digest(with_allow) != digest(body)
    assert canonical(validate_policy(with_allow)) == with_allow  # the stored form validates to itself


# -- matching --------------------------------------------------------------------------------
@pytest.mark.parametrize("number", [MEMBER_SERVICES, "(800) 555-0142", "+1 800 555 0142", "1.800.555.0142", "800-555-0142"])
def test_the_organisations_number_in_any_format_is_kept(guard: Guard, number: str) -> None:
    text, found = _out(guard, f"Call Member Services at {number} on weekdays.")
    assert number in text and "<PHONE>" not in text
    assert [(label, action) for label, action, _ in found] == [("PHONE", "allow")]


def test_other_numbers_and_people_are_still_redacted(guard: Guard) -> None:
    text, found = _out(guard, "Call Dr. Maria Kowalski at 617-253-1000 or 1-800-555-0143, or Mary Line.")
    assert "617-253-1000" not in text and "1-800-555-0143" not in text and "Kowalski" not in text and "Mary" not in text
    assert all(action == "redact" for _, action, _ in found) and {label for label, _, _ in found} == {"PHONE", "PERSON"}


def test_a_service_name_is_not_a_person_in_any_case_or_spacing(guard: Guard) -> None:
    for phrase in ("Nurse Line", "nurse line", "NURSE  LINE", "Nurse\nLine"):
        text, found = _out(guard, f"The 24-hour {phrase} is free for members.")
        assert "<PERSON>" not in text and phrase in text, (phrase, text)
        assert all(action == "allow" for _, action, _ in found), found


def test_an_entry_applies_only_to_its_labels() -> None:
    g = build_guard({**POLICY, "name": "labels", "allow": [{"value": MEMBER_SERVICES, "labels": ["EMAIL"]}]})
    assert _out(g, f"Call {MEMBER_SERVICES}.") == ("Call <PHONE>.", [("PHONE", "redact", MEMBER_SERVICES)])
    g = build_guard({**POLICY, "name": "labels", "allow": [{"value": "Nurse Line", "labels": ["PHONE"]}]})
    text, found = _out(g, "The 24-hour Nurse Line is free for members.")
    if found:  # the PERSON recognizer may or may not take "Line" for a name; if it does, it acts
        assert "<PERSON>" in text and {a for _, a, _ in found} == {"redact"}


def test_allowed_values_never_block_and_are_kept_in_requests_too() -> None:
    g = build_guard({**POLICY, "name": "blocking", "rules": [{"detector": "pii", "on": ["input", "output"], "action": "block"}]})
    r = g.check(f"Is {MEMBER_SERVICES} the right number?", Direction.INPUT)
    assert not r.blocked and r.text == f"Is {MEMBER_SERVICES} the right number?"
    assert [f.action for f in r.findings] == [Action.ALLOW]
    assert g.check("Is 617-253-1000 the right number?", Direction.INPUT).blocked


def test_the_reason_names_the_entry_never_the_text(guard: Guard) -> None:
    f = guard.check(f"Call {MEMBER_SERVICES}.", Direction.OUTPUT).findings[0]
    assert f.action is Action.ALLOW and "allow list (entry 1)" in f.reason and MEMBER_SERVICES not in f.public_dict()["reason"]


@pytest.mark.parametrize("size", [1, 3, 7])
def test_streamed_answers_keep_allowed_values(guard: Guard, size: int) -> None:
    answer = f"The 24-hour Nurse Line at {NURSE_LINE} is free. Member Services: {MEMBER_SERVICES}. Your doctor: 617-253-1000."
    found: list[Finding] = []
    f = guard.stream_filter(found.extend)
    assert f is not None
    out = "".join(f.feed(answer[i : i + size]) for i in range(0, len(answer), size)) + f.flush()
    assert f.halt is None
    assert out == guard.check(answer, Direction.OUTPUT).text
    assert MEMBER_SERVICES in out and "617-253-1000" not in out and "Nurse Line" in out


# -- the shipped example ---------------------------------------------------------------------
def test_the_acme_policy_keeps_acmes_own_numbers_and_services() -> None:
    g = build_guard(parse_document(ACME_POLICY.read_text()))
    answer = f"The 24-hour Nurse Line at {NURSE_LINE} is free. Call Member Services at {MEMBER_SERVICES} or use Acme Virtual Care."
    r = g.check(answer, Direction.OUTPUT, only=lambda rule: rule.detector.spans)
    assert r.text == answer
    assert r.findings and all(x.action is Action.ALLOW for x in r.findings)
    other = "Call Dr. Maria Kowalski at 617-253-1000."
    assert g.check(other, Direction.OUTPUT, only=lambda rule: rule.detector.spans).text == "Call Dr. <PERSON> at <PHONE>."
