"""Structured outputs: a request's ``response_format`` made into an :class:`OutputConstraint`.

The constraint is enforced by the engine while it decodes (see docs/adr/0111): llama.cpp
through a GBNF grammar, the torch engine through llguidance. Both compile a JSON schema
into a grammar, and each converter enforces a different part of JSON Schema; a keyword that
a converter would silently drop would let through answers that do not validate. So a
``strict`` schema is accepted only when every keyword in it is one both engines enforce (or
an annotation, which constrains nothing); anything else is a 400 naming
``response_format.json_schema.schema`` and the keyword, never a promise that is not kept.
A schema that is not ``strict`` (as OpenAI, which guarantees only strict schemas) may use
any of JSON Schema: what the decoder cannot enforce is dropped from the constraint
(:func:`relax_schema`), so the answer keeps the schema's structure and may break only a
dropped keyword (a ``minimum``, say).
"""

from __future__ import annotations

import json
from typing import Any

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes import OutputConstraint

PARAM = "response_format.json_schema.schema"

#: keywords that constrain nothing
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"}
)
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
#: string formats both engines enforce
FORMATS = frozenset({"date", "time", "date-time", "uuid"})
#: the keywords each kind of node may carry besides the annotations
_OBJECT = frozenset({"type", "properties", "required", "additionalProperties"})
_ARRAY = frozenset({"type", "items", "minItems", "maxItems", "prefixItems"})
_STRING = frozenset({"type", "minLength", "maxLength", "pattern", "format"})
_SCALAR = frozenset({"type"})
#: bounds on what a schema may ask for (grammar size, compile time)
MAX_SCHEMA_BYTES = 64 * 1024
MAX_DEPTH = 24
MAX_NODES = 2000
MAX_REPEAT = 512  # maxLength / maxItems / minLength / minItems


def constraint_from(response_format: Any, *, enforced_here: bool = True) -> OutputConstraint | None:
    """The constraint a validated ``response_format`` asks for (None for text or absent).

    ``response_format`` is the protocol model (``type``, ``json_schema``); the schema is
    checked here (see :func:`check_schema`), against JSON Schema's meta-schema only when a
    remote engine enforces it (``enforced_here`` false)."""
    if response_format is None or response_format.type == "text":
        return None
    raw = response_format.model_dump(by_alias=True, exclude_none=True)
    if response_format.type == "json_object":
        return OutputConstraint(kind="json_object", schema=None, response_format=raw)
    spec = response_format.json_schema
    schema = spec.schema_ if spec.schema_ is not None else {}
    if spec.strict or not enforced_here:
        check_schema(schema, subset=enforced_here)
    else:  # not strict: any valid schema, enforced as far as the decoder can (relax_schema)
        check_schema(schema, subset=False)
        schema = relax_schema(schema)
    return OutputConstraint(kind="json_schema", schema=schema, response_format=raw)


def _fail(message: str) -> PlinthError:
    return PlinthError(ErrorCode.INVALID_REQUEST, message, param=PARAM)


def check_schema(schema: Any, *, subset: bool = True) -> None:
    """Raise a 400 naming :data:`PARAM` unless ``schema`` is a valid JSON schema that uses
    only what constrained decoding enforces (``subset``; else any valid JSON schema)."""
    if not isinstance(schema, dict):
        raise _fail("the schema must be a JSON object")
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError) as e:  # pragma: no cover - parsed from JSON, so it serialises
        raise _fail(f"the schema is not serialisable: {e}") from None
    if size > MAX_SCHEMA_BYTES:
        raise _fail(f"the schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted")
    _check_meta(schema)
    if not subset:
        return
    try:
        _Walker(schema).node(schema, "#", 0)
    except (TypeError, AttributeError, ValueError, KeyError) as e:  # malformed, without jsonschema's meta-schema check
        raise _fail(f"not a valid JSON schema: {e}") from None


def _check_meta(schema: dict[str, Any]) -> None:
    """JSON Schema's own meta-schema check (draft 2020-12) when ``jsonschema`` is installed;
    the walk below checks the structure of every keyword it accepts either way."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - jsonschema ships with the dev extras
        return
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise _fail(f"not a valid JSON schema at {where}: {e.message[:200]}") from None


class _Walker:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.nodes = 0

    def node(self, s: Any, at: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fail(f"the schema has more than {MAX_NODES} subschemas")
        if depth > MAX_DEPTH:
            raise _fail(f"the schema nests deeper than {MAX_DEPTH} levels (at {at})")
        if not isinstance(s, dict):
            raise _fail(f"{at}: a subschema must be an object here (true/false schemas are supported only as additionalProperties)")
        keys = set(s) - ANNOTATIONS
        for defs in ("$defs", "definitions"):
            if defs in s:
                keys.discard(defs)
                if not isinstance(s[defs], dict):
                    raise _fail(f"{at}/{defs} must be an object")
                for name, sub in s[defs].items():
                    self.node(sub, f"{at}/{defs}/{name}", depth + 1)
        if "$ref" in s:
            self._only(keys, {"$ref"}, at, "$ref")
            ref = s["$ref"]
            if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")) or self._resolve(ref) is None:
                raise _fail(f"{at}/$ref: only references to this schema's own $defs or definitions are supported (got {ref!r:.80})")
            return
        for union in ("anyOf", "oneOf", "allOf", "not", "if", "then", "else"):
            if union in s and union != "anyOf":
                raise _fail(f"{at}: {union!r} is not supported in structured outputs; use anyOf")
        if "anyOf" in s:
            self._only(keys, {"anyOf"}, at, "anyOf")
            branches = s["anyOf"]
            for i, sub in enumerate(branches):
                self.node(sub, f"{at}/anyOf/{i}", depth + 1)
            return
        if "const" in s or "enum" in s:
            self._only(keys, {"const", "enum", "type"}, at, "const" if "const" in s else "enum")
            if "const" in s and "enum" in s:
                raise _fail(f"{at}: use either const or enum, not both")
            values = [s["const"]] if "const" in s else s["enum"]
            if "type" in s:
                self._enum_types(values, s["type"], at)
            return
        t = s.get("type")
        if isinstance(t, list):
            self._only(keys, {"type"}, at, "a list of types")
            return
        if t is None:
            if "properties" in s or "additionalProperties" in s or "required" in s:
                t = "object"
            elif keys & {"items", "prefixItems", "minItems", "maxItems"}:
                raise _fail(f'{at}: an array schema needs "type": "array"')
            elif keys & {"minLength", "maxLength", "pattern", "format"}:
                raise _fail(f'{at}: a string schema needs "type": "string"')
        if t == "object":
            self._object(s, keys, at, depth)
        elif t == "array":
            self._array(s, keys, at, depth)
        elif t == "string":
            self._string(s, keys, at)
        elif t is None:
            self._only(keys, set(), at, "a schema without a type")
        elif t not in TYPES:
            raise _fail(f"{at}: unknown type {t!r:.40}")
        else:
            self._only(keys, _SCALAR, at, f"type {t!r}")

    def _only(self, keys: set[str], allowed: set[str] | frozenset[str], at: str, what: str) -> None:
        extra = sorted(keys - allowed)
        if extra:
            raise _fail(
                f"{at}: {', '.join(repr(k) for k in extra)} {'is' if len(extra) == 1 else 'are'} not supported "
                f"with {what} in structured outputs (supported: {', '.join(sorted(allowed)) or 'annotations only'})"
            )

    def _resolve(self, ref: str) -> Any:
        node: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    @staticmethod
    def _enum_types(values: list[Any], t: Any, at: str) -> None:
        types = t if isinstance(t, list) else [t]
        for v in values:
            if not any(_is_type(v, x) for x in types):
                raise _fail(f"{at}: the value {json.dumps(v)[:60]} does not have the schema's type {t!r}")

    def _object(self, s: dict[str, Any], keys: set[str], at: str, depth: int) -> None:
        self._only(keys, _OBJECT, at, "type 'object'")
        props = s.get("properties", {})
        for name, sub in props.items():
            self.node(sub, f"{at}/properties/{name}", depth + 1)
        missing = [r for r in s.get("required", []) if r not in props]
        if missing:
            raise _fail(f"{at}: required names {missing!r:.80} that are not in properties (not supported in structured outputs)")
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            self.node(extra, f"{at}/additionalProperties", depth + 1)

    def _array(self, s: dict[str, Any], keys: set[str], at: str, depth: int) -> None:
        self._only(keys, _ARRAY, at, "type 'array'")
        if "prefixItems" in s:
            self._only(keys, {"type", "prefixItems"}, at, "prefixItems")
            for i, sub in enumerate(s["prefixItems"]):
                self.node(sub, f"{at}/prefixItems/{i}", depth + 1)
            return
        if "items" in s:
            self.node(s["items"], f"{at}/items", depth + 1)
        self._bounds(s, "minItems", "maxItems", at)

    def _string(self, s: dict[str, Any], keys: set[str], at: str) -> None:
        self._only(keys, _STRING, at, "type 'string'")
        given = [k for k in ("pattern", "format") if k in s]
        if len(given) > 1 or (given and keys & {"minLength", "maxLength"}):
            raise _fail(f"{at}: combine at most one of pattern, format, or minLength/maxLength in structured outputs")
        if "format" in s and s["format"] not in FORMATS:
            raise _fail(
                f"{at}: format {s['format']!r:.40} is not supported in structured outputs (supported: {', '.join(sorted(FORMATS))})"
            )
        if "pattern" in s:
            p = s["pattern"]
            if not (p.startswith("^") and p.endswith("$")) or len(p) < 2:
                raise _fail(f"{at}: a pattern must be anchored with ^ and $ in structured outputs (got {p!r:.60})")
            if any(c in p for c in '"\\.') or "[^" in p:
                raise _fail(
                    f"{at}: a pattern may use literal characters, character classes [...], groups, | and quantifiers "
                    "in structured outputs; not '.', '[^', backslash escapes or quotes"
                )
        self._bounds(s, "minLength", "maxLength", at)

    @staticmethod
    def _bounds(s: dict[str, Any], lo: str, hi: str, at: str) -> None:
        low, high = s.get(lo, 0), s.get(hi)
        if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
            raise _fail(f"{at}: {lo}/{hi} above {MAX_REPEAT} are not supported in structured outputs")
        if high is not None and high < low:
            raise _fail(f"{at}: {hi} ({high}) is below {lo} ({low})")


def _is_type(v: Any, t: Any) -> bool:
    if t == "null":
        return v is None
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    return False


def relax_schema(schema: Any) -> dict[str, Any]:
    """``schema`` cut down to what constrained decoding enforces, for schemas that are not
    ``strict``: keywords outside the subset are dropped (``minimum``, ``multipleOf``, an
    unanchored ``pattern``, an unknown ``format`` ...), ``oneOf`` becomes ``anyOf`` and
    ``allOf`` of objects is merged. The answer then has the schema's structure (names, types,
    required properties, enums) and may break only a dropped keyword; a schema that still
    cannot be enforced becomes "any JSON object"."""
    try:
        out = _relax(schema, 0)
        if not isinstance(out, dict):
            return {"type": "object"}
        _Walker(out).node(out, "#", 0)
        return out
    except (PlinthError, TypeError, AttributeError, ValueError, KeyError, RecursionError):
        return {"type": "object"}


def _relax(s: Any, depth: int) -> Any:
    if depth > MAX_DEPTH or not isinstance(s, dict):
        return {}
    keep = {k: s[k] for k in s if k in ANNOTATIONS}
    for defs in ("$defs", "definitions"):
        if isinstance(s.get(defs), dict):
            keep[defs] = {name: _relax(sub, depth + 1) for name, sub in s[defs].items()}
    if "$ref" in s:
        return {**keep, "$ref": s["$ref"]}
    union = s.get("anyOf", s.get("oneOf"))
    if isinstance(union, list) and union:
        return {**keep, "anyOf": [_relax(b, depth + 1) for b in union]}
    if isinstance(s.get("allOf"), list) and s["allOf"]:
        merged: dict[str, Any] = {k: v for k, v in s.items() if k != "allOf"}
        for part in s["allOf"]:
            if isinstance(part, dict):
                for k, v in part.items():
                    if k == "properties" and isinstance(v, dict):
                        merged.setdefault("properties", {}).update(v)
                    elif k == "required" and isinstance(v, list):
                        merged["required"] = list(dict.fromkeys([*merged.get("required", []), *v]))
                    else:
                        merged.setdefault(k, v)
        return _relax(merged, depth + 1)
    if "const" in s or "enum" in s:
        values = [s["const"]] if "const" in s else s["enum"]
        out = {**keep, "enum": list(values)} if "const" not in s else {**keep, "const": s["const"]}
        if "type" in s:
            types = s["type"] if isinstance(s["type"], list) else [s["type"]]
            if all(any(_is_type(v, t) for t in types) for v in values):
                out["type"] = s["type"]
        return out
    t = s.get("type")
    if t is None and ("properties" in s or "required" in s or "additionalProperties" in s):
        t = "object"
    if isinstance(t, list):
        return {**keep, "type": [x for x in t if x in TYPES] or "object"}
    if t == "object":
        props = {k: _relax(v, depth + 1) for k, v in (s.get("properties") or {}).items()} if isinstance(s.get("properties"), dict) else {}
        out = {**keep, "type": "object"}
        if props:
            out["properties"] = props
        required = [r for r in s.get("required", []) if r in props] if isinstance(s.get("required"), list) else []
        if required:
            out["required"] = required
        extra = s.get("additionalProperties")
        if isinstance(extra, bool):
            out["additionalProperties"] = extra
        elif isinstance(extra, dict):
            out["additionalProperties"] = _relax(extra, depth + 1)
        return out
    if t == "array":
        out = {**keep, "type": "array"}
        if isinstance(s.get("prefixItems"), list):
            out["prefixItems"] = [_relax(x, depth + 1) for x in s["prefixItems"]]
            return out
        if isinstance(s.get("items"), dict):
            out["items"] = _relax(s["items"], depth + 1)
        for k in ("minItems", "maxItems"):
            if isinstance(s.get(k), int) and 0 <= s[k] <= MAX_REPEAT:
                out[k] = s[k]
        if out.get("maxItems", MAX_REPEAT) < out.get("minItems", 0):
            out.pop("maxItems")
        return out
    if t == "string":
        out = {**keep, "type": "string"}
        p = s.get("pattern")
        anchored = isinstance(p, str) and len(p) >= 2 and p.startswith("^") and p.endswith("$")
        if isinstance(p, str) and anchored and not any(c in p for c in '"\\.') and "[^" not in p:
            out["pattern"] = p
        elif s.get("format") in FORMATS:
            out["format"] = s["format"]
        else:
            for k in ("minLength", "maxLength"):
                if isinstance(s.get(k), int) and 0 <= s[k] <= MAX_REPEAT:
                    out[k] = s[k]
            if out.get("maxLength", MAX_REPEAT) < out.get("minLength", 0):
                out.pop("maxLength")
        return out
    if t in TYPES:
        return {**keep, "type": t}
    return keep
