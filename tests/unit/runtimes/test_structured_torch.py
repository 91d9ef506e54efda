"""Structured outputs on the torch batching engine (llguidance masks), on the real embedded
model: answers parse and validate, each row of a batch has its own constraint, rows
without one give exactly their lone answers, and a cut answer finishes with ``length``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import jsonschema
import pytest

from plinth.errors import PlinthError
from plinth.runtimes.base import OutputConstraint, SamplingParams
from tests.support import batching_contract as contract
from tests.unit.runtimes import test_torch_batching as tb

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "population": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["big", "old", "coastal"]}, "maxItems": 3},
    },
    "required": ["city", "population", "tags"],
    "additionalProperties": False,
}
ANIMAL = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "legs": {"type": "integer"}, "wild": {"type": "boolean"}},
    "required": ["name", "legs", "wild"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def rt(torch_cache_dir: Path, smol_dir: Path):  # type: ignore[no-untyped-def]
    tb._CACHE["dir"] = torch_cache_dir
    runtime = tb._make()
    yield runtime
    runtime.unload()


def _gen(rt, question: str, constraint: OutputConstraint | None, max_tokens: int = 100, temperature: float = 0.0, seed=None):  # type: ignore[no-untyped-def]
    if constraint is not None:
        rt.check_constraint(constraint)
    prompt = rt.prepare_chat([{"role": "user", "content": question}])
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed, constraint=constraint)
    pieces, finish = [], None
    for d in rt.generate(prompt, params, threading.Event()):
        pieces.append(d.text)
        finish = d.finish_reason or finish
    return "".join(pieces), finish, pieces


def test_json_schema_answers_validate(rt) -> None:
    text, finish, pieces = _gen(rt, "Describe Paris as JSON.", OutputConstraint("json_schema", CITY))
    assert finish == "stop"
    jsonschema.validate(json.loads(text), CITY)
    assert len([p for p in pieces if p]) > 3, "the answer streams in pieces"


def test_sampled_answers_validate(rt) -> None:
    for seed in range(3):
        text, finish, _ = _gen(rt, "Describe a dog.", OutputConstraint("json_schema", ANIMAL), temperature=0.9, seed=seed)
        if finish == "stop":
            jsonschema.validate(json.loads(text), ANIMAL)


def test_json_object_answers_start_as_objects(rt) -> None:
    text, finish, _ = _gen(rt, "Give the colour of an apple as JSON.", OutputConstraint("json_object"), max_tokens=60)
    assert text.startswith("{")
    if finish == "stop":
        assert isinstance(json.loads(text), dict)


def test_a_cut_answer_finishes_with_length(rt) -> None:
    text, finish, _ = _gen(rt, "Describe Paris as JSON.", OutputConstraint("json_schema", CITY), max_tokens=4)
    assert finish == "length"
    assert text.startswith("{")


def test_each_row_has_its_own_constraint_and_unconstrained_rows_are_untouched(rt) -> None:
    questions = contract.QUESTIONS[:4]
    alone = [_gen(rt, q, None, max_tokens=24)[0] for q in questions]
    jobs = [lambda q=q: _gen(rt, q, None, max_tokens=24)[0] for q in questions]
    jobs += [
        lambda: _gen(rt, "Describe Paris as JSON.", OutputConstraint("json_schema", CITY))[0],
        lambda: _gen(rt, "Describe a cat.", OutputConstraint("json_schema", ANIMAL))[0],
    ]
    out = contract._concurrently(jobs)
    assert out[:4] == alone
    jsonschema.validate(json.loads(out[4]), CITY)
    jsonschema.validate(json.loads(out[5]), ANIMAL)
    assert rt.stats()["max_sequences_in_step"] >= 3


def test_a_schema_llguidance_cannot_compile_is_a_400(rt) -> None:
    with pytest.raises(PlinthError) as e:
        rt.check_constraint(OutputConstraint("json_schema", {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}))
    assert e.value.param == "response_format.json_schema.schema"
