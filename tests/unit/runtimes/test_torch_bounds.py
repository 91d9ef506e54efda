"""The bounds the torch engine adds to a schema so it enforces what llama.cpp's grammars do:
tuples end after their items, numbers without a range have at most 16 integral digits."""

from __future__ import annotations

import jsonschema
import llguidance
import pytest

from plinth.runtimes.torch_hf import bounded_like_llamacpp

SCHEMA = {
    "type": "object",
    "properties": {
        "point": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "number"}]},
        "open": {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
        "age": {"type": "integer", "minimum": 0},
        "type": {"type": "string", "enum": ["integer"]},
        "n": {"anyOf": [{"type": "number"}, {"type": "null"}]},
    },
    "required": ["point"],
    "$defs": {"x": {"type": "integer"}},
}


def test_tuples_close_and_open_numbers_get_llamacpps_range() -> None:
    b = bounded_like_llamacpp(SCHEMA)
    assert b["properties"]["point"]["items"] is False
    assert b["properties"]["open"]["items"] == {"type": "integer", "minimum": -(10**16 - 1), "maximum": 10**16 - 1}
    assert b["properties"]["age"] == {"type": "integer", "minimum": 0}  # a given range is kept
    assert b["properties"]["type"] == {"type": "string", "enum": ["integer"]}  # a property named "type" is not a type
    assert b["properties"]["n"]["anyOf"][0]["maximum"] == 10**16 - 1
    assert b["$defs"]["x"]["minimum"] == -(10**16 - 1)
    assert SCHEMA["properties"]["point"] == {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "number"}]}  # not changed
    jsonschema.Draft202012Validator.check_schema(b)
    jsonschema.validate({"point": [1, 2.5]}, b)
    for bad in ({"point": [1, 2.5, 3]}, {"point": [10**17, 1]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, b)


def test_llguidance_compiles_the_bounded_schema() -> None:
    grammar = llguidance.LLMatcher.grammar_from_json_schema(bounded_like_llamacpp(SCHEMA), defaults={"whitespace_flexible": False})
    assert not llguidance.LLMatcher.validate_grammar(grammar)  # no error message
