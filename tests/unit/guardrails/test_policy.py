"""Policy documents: validation reports every problem at once; defaults; references."""

from __future__ import annotations

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.policy import canonical, digest, parse_document, split_ref, validate_policy
from tests.unit.guardrails.helpers import ACME_POLICY


def test_the_shipped_policies_validate() -> None:
    from plinth.guardrails.service import builtin_document

    for doc in (builtin_document("default"), parse_document(ACME_POLICY.read_text())):
        spec = validate_policy(doc)
        assert spec.rules and all(r.id for r in spec.rules)


def test_defaults_are_filled_per_detector_kind() -> None:
    spec = validate_policy({"name": "p", "rules": [{"detector": "pii"}, {"detector": "injection"}, {"detector": "groundedness"}]})
    pii, inj, gr = spec.rules
    assert pii.action.value == "redact" and [d.value for d in pii.on] == ["input", "output"]
    assert inj.action.value == "block" and [d.value for d in inj.on] == ["input", "retrieved"]
    assert [d.value for d in gr.on] == ["output"]


def test_every_problem_is_reported_at_once() -> None:
    doc = {
        "name": "Bad Name!",
        "kind": "Something",
        "placeholder": "[redacted]",
        "rules": [
            {"detector": "nope"},
            {"detector": "toxicity", "action": "redact"},
            {"detector": "pii", "entities": ["NOT_A_TYPE"]},
            {"detector": "pii", "id": "pii2", "patterns": [{"type": "X_ID", "regex": "(unclosed"}]},
            {"detector": "topic", "on": ["output"], "allowed": ["insurance"]},
            {"detector": "secrets", "threshold": 3},
            {"detector": "pii", "id": "pii3", "actions": {"NOT_A_LABEL": "block"}},
            {"detector": "toxicity", "id": "toxicity", "colour": "red"},
        ],
    }
    with pytest.raises(PlinthError) as e:
        validate_policy(doc)
    assert e.value.code is ErrorCode.INVALID_REQUEST
    errors = e.value.details["errors"]
    text = " | ".join(errors)
    for expected in (
        "name:",
        "kind:",
        "placeholder",
        "unknown detector 'nope'",
        "use block or flag",
        "NOT_A_TYPE",
        "not a valid regular expression",
        "topic cannot check output",
        "threshold",
        "NOT_A_LABEL",
        "used by two rules",
        "colour",
    ):
        assert expected in text, (expected, errors)


def test_yaml_on_key_and_bad_yaml() -> None:
    doc = parse_document("name: p\nrules:\n  - detector: pii\n    on: [output]\n")
    assert [d.value for d in validate_policy(doc).rules[0].on] == ["output"]
    with pytest.raises(PlinthError, match="not valid YAML"):
        parse_document("name: [unclosed")
    with pytest.raises(PlinthError, match="mapping"):
        parse_document("- just a list")


def test_digest_is_stable_and_content_sensitive() -> None:
    a = canonical(validate_policy({"name": "p", "rules": [{"detector": "pii"}]}))
    b = canonical(validate_policy({"name": "p", "rules": [{"detector": "pii", "on": ["input", "output"]}]}))
    c = canonical(validate_policy({"name": "p", "rules": [{"detector": "pii", "on": ["output"]}]}))
    assert digest(a) == digest(b) != digest(c)


def test_references() -> None:
    assert split_ref("acme") == ("acme", None)
    assert split_ref("acme@3") == ("acme", 3)
    for bad in ("acme@", "acme@0", "acme@x"):
        with pytest.raises(PlinthError):
            split_ref(bad)
