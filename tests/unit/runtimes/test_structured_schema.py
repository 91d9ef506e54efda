"""Which JSON schemas structured outputs accept (plinth.serving.structured), and the GBNF
the llama.cpp engine makes of them. No model is loaded here."""

from __future__ import annotations

import pytest

from plinth.errors import PlinthError
from plinth.runtimes.llamacpp_engine import schema_to_gbnf
from plinth.serving.protocol import ResponseFormat
from plinth.serving.structured import PARAM, check_schema, constraint_from

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "email": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 3},
    },
    "required": ["name", "age", "email", "tags"],
    "additionalProperties": False,
    "$defs": {"tag": {"type": "string", "enum": ["a", "b"]}},
    "title": "Person",
}


def test_supported_schemas_pass() -> None:
    check_schema(PERSON)
    check_schema({})
    check_schema({"type": ["string", "null"]})
    check_schema({"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}]})
    check_schema({"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"})


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": 5}, "not a valid JSON schema"),
        ({"type": "integer", "minimum": 0}, "'minimum'"),
        ({"oneOf": [{"type": "string"}]}, "'oneOf'"),
        ({"allOf": [{"type": "string"}]}, "'allOf'"),
        ({"type": "string", "format": "email"}, "format 'email'"),
        ({"type": "string", "pattern": "[a-z]+"}, "anchored"),
        ({"type": "string", "pattern": "^.+$"}, "not '.'"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "not in properties"),
        ({"$ref": "https://example.com/s.json"}, "$ref"),
        ({"type": "object", "patternProperties": {"a": {}}}, "'patternProperties'"),
        ({"type": "string", "maxLength": 100000}, "above"),
        ({"type": "string", "enum": [1]}, "does not have the schema's type"),
        ({"type": ["string", "null"], "maxLength": 3}, "a list of types"),
    ],
)
def test_unsupported_or_invalid_schemas_are_refused_naming_the_schema(schema: dict, words: str) -> None:
    with pytest.raises(PlinthError) as e:
        check_schema(schema)
    assert e.value.param == PARAM
    assert words in e.value.message


def test_deeply_nested_schemas_are_refused() -> None:
    schema: dict = {"type": "string"}
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    with pytest.raises(PlinthError, match="nests deeper"):
        check_schema(schema)


def test_response_format_becomes_a_constraint() -> None:
    assert constraint_from(None) is None
    assert constraint_from(ResponseFormat(type="text")) is None
    c = constraint_from(ResponseFormat(type="json_object"))
    assert c is not None and c.kind == "json_object" and c.schema is None
    rf = ResponseFormat.model_validate({"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    c = constraint_from(rf)
    assert c is not None and c.kind == "json_schema" and c.schema == PERSON
    assert c.response_format == {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    with pytest.raises(ValueError, match="json_schema is required"):
        ResponseFormat.model_validate({"type": "json_schema"})


def test_gbnf_strings_exclude_raw_control_characters_and_escape_literals() -> None:
    props = {'a"b\\c': {"enum": ['x"y', "z\\w", "t\nu"]}, "s": {"type": "string"}}
    gbnf = schema_to_gbnf({"type": "object", "properties": props, "required": ['a"b\\c']})
    assert r'char ::= [^"\\\x7F\x00-\x1F] |' in gbnf
    # the literal of the name: "a\"b\\c" in JSON, each backslash and quote escaped once more for GBNF
    assert r'"\"a\\\"b\\\\c\""' in gbnf
    assert r'"\"t\\nu\""' in gbnf
