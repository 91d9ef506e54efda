"""Stored responses of /v1/responses in the metadata store, on SQLite and Postgres: what is
stored comes back whole, ids are per project (another project's reads as absent and cannot
be deleted), and deleting is final."""

from __future__ import annotations

import uuid

import pytest

from plinth.domain.projects import project_scope
from plinth.domain.responses import StoredResponse
from plinth.errors import PlinthError
from plinth.store.sql import SqlStore


def _response(**kw: object) -> StoredResponse:
    rid = "resp_" + uuid.uuid4().hex
    text = "hi ✓ \x00 and a NUL"  # what a model may write; Postgres' json type takes the escape
    body = {"id": rid, "object": "response", "output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}]}
    return StoredResponse(id=rid, model="m", body=body, input_items=[{"id": "msg_1", "type": "message", "role": "user"}], **kw)  # type: ignore[arg-type]


def test_add_get_delete(store: SqlStore) -> None:
    first = store.add_response(_response())
    second = store.add_response(_response(previous_response_id=first.id))
    got = store.get_response(second.id)
    assert got is not None and got.body == second.body and got.input_items == second.input_items
    assert got.previous_response_id == first.id and got.created_at is not None and got.model == "m"
    assert store.delete_response(first.id) is True
    assert store.get_response(first.id) is None and store.delete_response(first.id) is False
    assert store.get_response(second.id) is not None  # a follow-up keeps its own copy of the conversation


def test_ids_that_are_not_response_ids_read_as_absent(store: SqlStore) -> None:
    for rid in ("", "resp_", "resp_XYZ", "chatcmpl-" + "0" * 32, "resp_" + "0" * 32 + "'; --"):
        assert store.get_response(rid) is None and store.delete_response(rid) is False


def test_another_projects_response_is_absent(store: SqlStore) -> None:
    with project_scope("team-a"):
        theirs = store.add_response(_response())
        assert theirs.project == "team-a" and store.get_response(theirs.id) is not None
    with project_scope("team-b"):
        assert store.get_response(theirs.id) is None
        assert store.delete_response(theirs.id) is False
    with project_scope("team-a"):
        assert store.get_response(theirs.id) is not None


def test_a_body_that_is_not_json_is_refused(store: SqlStore) -> None:
    bad = StoredResponse(id="resp_" + uuid.uuid4().hex, model="m", body={"x": float("nan")})
    with pytest.raises(PlinthError) as e:
        store.add_response(bad)
    assert e.value.param == "body"
