"""The guardrails area of the metadata store, on SQLite and Postgres."""

from __future__ import annotations

import threading

from plinth.domain.guardrails import Action, Direction, GuardrailEvent
from plinth.guardrails.service import GuardrailService

DOC = {"name": "p1", "description": "first", "rules": [{"detector": "pii"}]}


def test_versions_are_immutable_and_only_changes_make_new_ones(store) -> None:  # type: ignore[no-untyped-def]
    svc = GuardrailService(store)
    v1, created = svc.apply(DOC)
    assert (v1.ref, created) == ("p1@1", True)
    again, created = svc.apply(DOC)
    assert (again.ref, created) == ("p1@1", False)
    v2, created = svc.apply({**DOC, "rules": [{"detector": "pii", "on": ["output"]}]})
    assert (v2.ref, created) == ("p1@2", True)
    assert svc.get("p1").version == 2
    assert svc.get("p1@1").spec["rules"][0]["on"] == ["input", "output"]
    assert [v.version for v in svc.versions("p1")] == [1, 2]
    assert [p.name for p in svc.list()] == ["p1"]


def test_builtin_policy_is_seeded_and_protected(store) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from plinth.errors import ErrorCode, PlinthError

    svc = GuardrailService(store)
    svc.ensure_builtin()
    svc.ensure_builtin()
    assert [(p.name, p.latest_version, p.builtin) for p in svc.list()] == [("default", 1, True)]
    with pytest.raises(PlinthError) as e:
        svc.apply({"name": "default", "rules": [{"detector": "pii"}]})
    assert e.value.code is ErrorCode.PERMISSION_DENIED
    with pytest.raises(PlinthError) as e:
        svc.delete("default")
    assert e.value.code is ErrorCode.PERMISSION_DENIED


def test_unknown_policies_and_versions(store) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from plinth.errors import ErrorCode, PlinthError

    svc = GuardrailService(store)
    svc.apply(DOC)
    for ref, msg in (("nope", "does not exist"), ("p1@7", "has no version 7")):
        with pytest.raises(PlinthError, match=msg) as e:
            svc.get(ref)
        assert e.value.code is ErrorCode.NOT_FOUND


def test_delete_refused_while_attached_then_removes_every_version(store) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from plinth.errors import ErrorCode, PlinthError

    svc = GuardrailService(store)
    svc.apply(DOC)
    svc.apply({**DOC, "description": "second"})
    with pytest.raises(PlinthError) as e:
        svc.delete("p1", attached_to=["m1"])
    assert e.value.code is ErrorCode.CONFLICT
    svc.delete("p1")
    assert store.get_guardrail_policy("p1") is None and store.list_guardrail_policy_versions("p1") == []


def test_concurrent_writers_get_distinct_versions(store) -> None:  # type: ignore[no-untyped-def]
    svc = GuardrailService(store)
    refs: list[str] = []
    errors: list[Exception] = []

    def write(i: int) -> None:
        try:
            refs.append(svc.apply({**DOC, "description": f"writer {i}"})[0].ref)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(refs) == sorted(f"p1@{i}" for i in range(1, 7))


def test_events_are_stored_and_filtered(store) -> None:  # type: ignore[no-untyped-def]
    def ev(i: int, model: str, detector: str) -> GuardrailEvent:
        return GuardrailEvent(
            request_id=f"r{i}",
            model_id=model,
            policy="p1",
            policy_version=1,
            direction=Direction.INPUT,
            detector=detector,
            kind=detector,
            label="EMAIL" if detector == "pii" else "toxic",
            action=Action.REDACT if detector == "pii" else Action.BLOCK,
            score=0.9,
            start=3 if detector == "pii" else None,
            end=9 if detector == "pii" else None,
            reason="e-mail address",
        )

    store.add_guardrail_events([ev(i, "m1" if i % 2 else "m2", "pii" if i < 4 else "toxicity") for i in range(6)])
    every = store.list_guardrail_events()
    assert [e.request_id for e in every] == ["r5", "r4", "r3", "r2", "r1", "r0"]
    assert [e.request_id for e in store.list_guardrail_events(model_id="m1")] == ["r5", "r3", "r1"]
    assert [e.request_id for e in store.list_guardrail_events(detector="toxicity")] == ["r5", "r4"]
    page = store.list_guardrail_events(limit=2)
    rest = store.list_guardrail_events(before_id=page[-1].id, limit=10)
    assert [e.request_id for e in page + rest] == [e.request_id for e in every]
    e = store.list_guardrail_events(request_id="r0")[0]
    assert (e.action, e.direction, e.start, e.end, e.created_at is not None) == (Action.REDACT, Direction.INPUT, 3, 9, True)


def test_service_writes_events_in_the_background(store) -> None:  # type: ignore[no-untyped-def]
    from plinth.monitoring.metrics import Metrics

    metrics = Metrics()
    svc = GuardrailService(store, metrics)
    event = GuardrailEvent(
        request_id="bg",
        model_id="m",
        policy="p",
        policy_version=1,
        direction=Direction.OUTPUT,
        detector="pii",
        kind="pii",
        label="US_SSN",
        action=Action.REDACT,
        score=0.95,
        start=1,
        end=12,
    )
    svc.record([event], deployment="m")
    svc.flush()
    svc.close()
    assert [e.request_id for e in store.list_guardrail_events()] == ["bg"]
    assert b'plinth_guardrail_hits_total{action="redact",deployment="m",detector="pii",direction="output"} 1.0' in metrics.render()
