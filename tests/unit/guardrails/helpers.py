"""Helpers of the guardrail tests: the shared evaluation sets and the example policy."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED_SETS = REPO.parent / "shared" / "datasets" / "guardrails"
ACME_POLICY = REPO / "examples" / "guardrails" / "acme-health.yaml"


def shared_set(name: str) -> Path:
    """A development evaluation set; fails (does not skip) when the shared folder is missing."""
    path = SHARED_SETS / f"{name}.jsonl"
    if not path.is_file():
        pytest.fail(
            f"the guardrail evaluation set {path} is missing: the tests expect ../shared/datasets/guardrails "
            "beside the repository (as CI lays it out)"
        )
    return path


def build_guard(doc: dict | str, embedder_factory=None):  # type: ignore[no-untyped-def]
    """A Guard for a policy document (validated as the service would), without a store."""
    from plinth.domain.guardrails import PolicyVersion
    from plinth.guardrails.base import Resources
    from plinth.guardrails.engine import Guard
    from plinth.guardrails.policy import canonical, digest, parse_document, validate_policy

    if isinstance(doc, str):
        doc = parse_document(doc)
    spec = validate_policy(doc)
    body = canonical(spec)
    return Guard.build(PolicyVersion(spec.name, 1, body, digest(body)), validate_policy(body), Resources(embedder_factory))
