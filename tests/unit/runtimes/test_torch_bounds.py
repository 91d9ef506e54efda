"""The bounds the torch engine adds to a schema so it enforces what llama.cpp's grammars do:
tuples end after their items, numbers without a range have at most 16 integral digits and
at most 10 fractional ones."""

from __future__ import annotations

from pathlib import Path

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
    assert b["properties"]["n"]["anyOf"][0]["multipleOf"] == 1e-10  # a fraction ends too
    assert "multipleOf" not in b["properties"]["age"]  # integers have no fraction
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


def test_a_numbers_fraction_ends_under_llguidance(smol_dir: Path) -> None:
    """The torch run of bench/structured.py had answers cut by max_tokens inside an endless
    fraction ("mean": 26.12232489877143894...): the bounded schema lets a fraction end."""
    import llguidance.hf
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(smol_dir))
    tok = llguidance.hf.from_tokenizer(hf, n_vocab=len(hf))
    schema = {"type": "object", "properties": {"mean": {"type": "number"}}, "required": ["mean"], "additionalProperties": False}
    grammar = llguidance.LLMatcher.grammar_from_json_schema(bounded_like_llamacpp(schema), defaults={"whitespace_flexible": False})

    def accepts(text: str) -> bool:
        m = llguidance.LLMatcher(tok, grammar, log_level=0)
        return all(m.consume_token(t) for t in hf.encode(text, add_special_tokens=False)) and m.is_accepting()

    assert accepts('{"mean":26.1223248987}')
    assert accepts('{"mean":-3}')
    assert not accepts('{"mean":26.12232489877}')  # an 11th fractional digit
