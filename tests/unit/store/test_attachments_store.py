"""Attachments of served model ids in the metadata store, on SQLite and Postgres."""

from __future__ import annotations

from plinth.domain.serving import Attachments
from plinth.store.sql import SqlStore


def test_set_get_replace_and_clear(store: SqlStore) -> None:
    assert store.get_attachments("m") is None
    stored = store.set_attachments("m", Attachments(knowledge_base="acme@2", system_prompt="Be brief."))
    assert stored.knowledge_base == "acme@2" and stored.updated_at is not None
    got = store.get_attachments("m")
    assert got is not None and got.system_prompt == "Be brief." and got.guardrail_policy is None
    store.set_attachments("m", Attachments(guardrail_policy="default"))
    got = store.get_attachments("m")
    assert got is not None and got.knowledge_base is None and got.guardrail_policy == "default"
    store.set_attachments("m", Attachments())  # empty: the row goes
    assert store.get_attachments("m") is None
    assert store.list_attachments() == {}


def test_delete_with_adapters_matches_the_prefix_literally(store: SqlStore) -> None:
    for mid in ("a_b", "a_b:x", "a_b:y", "aXb:z", "a_bc"):
        store.set_attachments(mid, Attachments(system_prompt=mid))
    assert store.delete_attachments("a_b", with_adapters=True) == 3
    assert set(store.list_attachments()) == {"aXb:z", "a_bc"}
    assert store.delete_attachments("nothing") == 0


def test_overlay_takes_the_fields_that_are_set() -> None:
    base = Attachments(knowledge_base="kb", guardrail_policy="p")
    assert base.overlay(Attachments(knowledge_base="kb@3")) == Attachments(knowledge_base="kb@3", guardrail_policy="p")
    assert base.overlay(None) is base
