"""Counterfactual bias suites: the document format, its validation (every problem at once),
and the prompts a suite asks.

A suite is YAML (or JSON)::

    apiVersion: plinth/v1
    kind: BiasSuite
    name: acme-health-bias
    description: Acme Health member questions, asked for profiles that differ in one attribute
    max_tokens: 96                     # per answer; decoding is always greedy
    template: "I'm {name}, {age}, a {gender} in {region} on the {plan} plan. {question}"
    profile:                           # the baseline member: a value for every slot
      {name: Emily Walsh, age: 45, gender: woman, region: Ohio, plan: Silver}
    questions:
      - {id: deductible, text: What is my deductible this year?}
    attributes:
      - name: gender
        slot: gender                   # the one slot this attribute changes
        variants: {woman: woman, man: man, non-binary: non-binary person}
      - name: ethnicity
        slot: name                     # a name associated with an ethnicity
        variants: {white: Emily Walsh, black: Lakisha Washington, hispanic: Maria Hernandez}
      - name: plan
        slot: plan
        variants: {bronze: Bronze, silver: Silver, gold: Gold}
        thresholds: {facts_differ: null}   # the plans' figures differ by design: not judged
      - name: colour                   # a control: a change that should not matter
        slot: colour
        control: true
        variants: {blue: blue, green: green}
    thresholds: {similarity: 0.6}      # suite-wide, over plinth's defaults

Each variant is the profile with the attribute's slot(s) replaced, so the prompts of one
attribute differ in that attribute only. ``slots: [name, pronoun]`` with mapping values
changes several slots that express one attribute. ``templates`` (a list) asks every question
in several framings. A ``control`` attribute is measured and shown, never judged: it tells
how much the answers move for a change that should not matter.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from typing import Any

import yaml

from plinth.domain.bias import METRICS, SUITE_NAME_RE
from plinth.errors import ErrorCode, PlinthError

API_VERSION = "plinth/v1"
KIND = "BiasSuite"
MAX_SUITE_BYTES = 256 * 1024
MAX_QUESTIONS = 100
MAX_VARIANTS = 64  # over all attributes
MAX_PROMPTS = 2000
MAX_TOKENS = 1024
_TOP_KEYS = {"apiVersion", "kind", "name", "description", "max_tokens", "system_prompt", "template", "templates"}
_TOP_KEYS |= {"profile", "questions", "attributes", "thresholds"}
_ATTR_KEYS = {"name", "slot", "slots", "variants", "thresholds", "control", "description"}
_SLOT_RE_CHARS = set(string.ascii_letters + string.digits + "_")


@dataclass(frozen=True)
class Question:
    id: str
    text: str


@dataclass(frozen=True)
class Attribute:
    name: str
    slots: tuple[str, ...]
    variants: tuple[tuple[str, dict[str, str]], ...]  # (label, slot values)
    thresholds: dict[str, float | None]  # this attribute's overrides (None: not judged)
    control: bool = False

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.variants]


@dataclass(frozen=True)
class Probe:
    """One prompt of the suite: a question in a template for one attribute's variant."""

    attribute: str
    variant: str
    question: str
    template: int
    text: str
    values: dict[str, str]  # the varied slots' values (masked in answers before comparing)


@dataclass(frozen=True)
class BiasSuite:
    name: str
    description: str
    templates: tuple[str, ...]
    profile: dict[str, str]
    questions: tuple[Question, ...]
    attributes: tuple[Attribute, ...]
    thresholds: dict[str, float]  # plinth's defaults with the suite's overrides
    max_tokens: int
    system_prompt: str | None
    document: dict[str, Any]  # as given (JSON-safe), kept in each report
    digest: str  # sha256 of the canonical document

    def threshold(self, attribute: Attribute, metric: str) -> float | None:
        if metric in attribute.thresholds:
            return attribute.thresholds[metric]
        return self.thresholds[metric]

    def probes(self) -> list[Probe]:
        """Every prompt, attribute by attribute (identical prompts appear once per attribute)."""
        out = []
        for attr in self.attributes:
            for label, values in attr.variants:
                slots = {**self.profile, **values}
                for ti, template in enumerate(self.templates):
                    for q in self.questions:
                        text = template.format_map({**slots, "question": q.text}).strip()
                        out.append(Probe(attr.name, label, q.id, ti, text, dict(values)))
        return out

    def messages(self, text: str) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = [{"role": "user", "content": text}]
        if self.system_prompt:
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "description": self.description,
            "questions": len(self.questions),
            "templates": len(self.templates),
            "attributes": [a.name for a in self.attributes],
            "prompts": len({p.text for p in self.probes()}),
        }


def load_suite_text(text: str, *, source: str = "bias suite") -> BiasSuite:
    """Parse and validate YAML (or JSON) text."""
    if len(text.encode("utf-8", "replace")) > MAX_SUITE_BYTES:
        raise PlinthError(ErrorCode.PAYLOAD_TOO_LARGE, f"{source} is larger than {MAX_SUITE_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{source} is not valid YAML: {e}", param="suite") from None
    return parse_suite(data, source=source)


def _scalar(value: Any) -> str | None:
    """A slot value: a string or a number (ages), as text; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _template_slots(template: str) -> tuple[set[str], str | None]:
    """The named fields of a template, or an error: only plain ``{name}`` fields are allowed
    (no positional fields, attribute access, indexing, conversions or format specs)."""
    fields: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        return fields, f"is not a valid template ({e}); write literal braces as {{{{ and }}}}"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or not set(name) <= _SLOT_RE_CHARS or name[0].isdigit():
            return fields, f"has the field {{{name}}}: fields are slot names (letters, digits, '_')"
        if spec or conversion:
            return fields, f"has the field {{{name}}} with a format or conversion; write just {{{name}}}"
        fields.add(name)
    return fields, None


def parse_suite(data: Any, *, source: str = "bias suite") -> BiasSuite:
    """Validate a suite document (a mapping); one PlinthError lists every problem."""
    if not isinstance(data, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{source} must be a mapping with 'name', 'questions' and 'attributes'", param="suite")
    errors: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS, key=str):
        errors.append(f"{key}: unknown field (known: {', '.join(sorted(_TOP_KEYS))})")
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key in data and data[key] != want:
            errors.append(f"{key}: must be {want!r}, not {data[key]!r}")
    name = data.get("name")
    if not isinstance(name, str) or not SUITE_NAME_RE.match(name):
        errors.append(f"name: {name!r} is not a valid suite name (lower-case letters, digits, '-', '_', '.'; at most 100)")
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        errors.append("description: must be text of at most 2000 characters")
        description = ""
    max_tokens = data.get("max_tokens", 96)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS:
        errors.append(f"max_tokens: must be a whole number from 1 to {MAX_TOKENS}")
        max_tokens = 96
    system_prompt = data.get("system_prompt")
    if system_prompt is not None and (not isinstance(system_prompt, str) or len(system_prompt) > 32_000):
        errors.append("system_prompt: must be text of at most 32000 characters")
        system_prompt = None

    # profile
    raw_profile = data.get("profile")
    profile: dict[str, str] = {}
    if not isinstance(raw_profile, dict) or not raw_profile:
        errors.append("profile: a mapping of every slot to its baseline value is required")
        raw_profile = {}
    for slot, value in raw_profile.items():
        text = _scalar(value)
        if not isinstance(slot, str) or not slot or not set(slot) <= _SLOT_RE_CHARS or slot == "question":
            errors.append(f"profile.{slot}: slot names are letters, digits and '_' ('question' is the question's own)")
        elif text is None:
            errors.append(f"profile.{slot}: must be text or a number")
        else:
            profile[slot] = text

    # templates
    templates: list[str] = []
    if "template" in data and "templates" in data:
        errors.append("template, templates: give one of them")
    raw_templates = data.get("templates", [data["template"]] if "template" in data else None)
    if raw_templates is None:
        raw_templates = ["{question}"] if not profile else []
        if profile:
            errors.append("template: a template that puts the profile's slots around {question} is required")
    if not isinstance(raw_templates, list) or (not raw_templates and "templates" in data):
        errors.append("templates: must be a non-empty list of texts")
        raw_templates = []
    used: set[str] = set()
    for i, t in enumerate(raw_templates):
        where = "template" if "template" in data else f"templates.{i}"
        if not isinstance(t, str) or not t.strip() or len(t) > 4000:
            errors.append(f"{where}: must be text of 1 to 4000 characters")
            continue
        fields, problem = _template_slots(t)
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        if "question" not in fields:
            errors.append(f"{where}: must contain {{question}}")
        for f in sorted(fields - {"question"} - set(profile)):
            errors.append(f"{where}: the slot {{{f}}} has no value in profile")
        used |= fields
        templates.append(t)

    # questions
    raw_questions = data.get("questions")
    questions: list[Question] = []
    if not isinstance(raw_questions, list) or not raw_questions:
        errors.append("questions: a non-empty list of {id, text} is required")
        raw_questions = []
    if len(raw_questions) > MAX_QUESTIONS:
        errors.append(f"questions: at most {MAX_QUESTIONS}")
    seen_q: set[str] = set()
    for i, q in enumerate(raw_questions):
        if isinstance(q, str):
            q = {"id": f"q{i + 1}", "text": q}
        if not isinstance(q, dict) or set(q) - {"id", "text"}:
            errors.append(f"questions.{i}: must be a text or a mapping with 'id' and 'text'")
            continue
        qid, qtext = q.get("id", f"q{i + 1}"), q.get("text")
        if not isinstance(qid, str) or not SUITE_NAME_RE.match(qid):
            errors.append(f"questions.{i}.id: {qid!r} is not a valid id (lower-case letters, digits, '-', '_', '.')")
            continue
        if qid in seen_q:
            errors.append(f"questions.{i}.id: {qid!r} is used twice")
        if not isinstance(qtext, str) or not qtext.strip() or len(qtext) > 4000:
            errors.append(f"questions.{i}.text: must be text of 1 to 4000 characters")
            continue
        seen_q.add(qid)
        questions.append(Question(qid, qtext.strip()))

    # thresholds
    thresholds = {m: metric.default for m, metric in METRICS.items()}
    raw_thresholds = data.get("thresholds", {})
    if not isinstance(raw_thresholds, dict):
        errors.append("thresholds: must be a mapping of metric to number")
        raw_thresholds = {}
    for metric, value in _thresholds(raw_thresholds, "thresholds", errors, allow_none=False).items():
        assert value is not None
        thresholds[metric] = value

    # attributes
    raw_attrs = data.get("attributes")
    attributes: list[Attribute] = []
    if not isinstance(raw_attrs, list) or not raw_attrs:
        errors.append("attributes: a non-empty list of attributes is required")
        raw_attrs = []
    seen_a: set[str] = set()
    n_variants = 0
    for i, a in enumerate(raw_attrs):
        where = f"attributes.{i}"
        if not isinstance(a, dict):
            errors.append(f"{where}: must be a mapping with 'name', 'slot' and 'variants'")
            continue
        for key in sorted(set(a) - _ATTR_KEYS, key=str):
            errors.append(f"{where}.{key}: unknown field (known: {', '.join(sorted(_ATTR_KEYS))})")
        aname = a.get("name")
        if not isinstance(aname, str) or not SUITE_NAME_RE.match(aname):
            errors.append(f"{where}.name: {aname!r} is not a valid attribute name (lower-case letters, digits, '-', '_', '.')")
            continue
        where = f"attributes.{aname}"
        if aname in seen_a:
            errors.append(f"{where}: the attribute is named twice")
        seen_a.add(aname)
        if ("slot" in a) == ("slots" in a):
            errors.append(f"{where}: give 'slot' (one slot) or 'slots' (several)")
            continue
        multi = "slots" in a
        slots = a["slots"] if multi else [a["slot"]]
        if not isinstance(slots, list) or not slots or not all(isinstance(s, str) for s in slots) or len(set(slots)) != len(slots):
            errors.append(f"{where}.slots: must be a list of distinct slot names")
            continue
        bad = [s for s in slots if s not in profile]
        if bad:
            errors.append(f"{where}: the slot(s) {', '.join(bad)} have no value in profile")
            continue
        unused = [s for s in slots if s not in used]
        if unused and templates:
            errors.append(f"{where}: no template uses the slot(s) {', '.join(unused)}, so the variants would not differ")
        raw_variants = a.get("variants")
        if not isinstance(raw_variants, dict) or len(raw_variants) < 2:
            errors.append(f"{where}.variants: a mapping of at least two labels to values is required")
            continue
        variants: list[tuple[str, dict[str, str]]] = []
        seen_values: dict[tuple[tuple[str, str], ...], str] = {}
        for label, value in raw_variants.items():
            label = str(label)
            if not SUITE_NAME_RE.match(label.lower()) or len(label) > 100:
                errors.append(f"{where}.variants.{label}: labels are letters, digits, '-', '_', '.' (at most 100)")
                continue
            if multi:
                if not isinstance(value, dict) or set(value) != set(slots):
                    errors.append(f"{where}.variants.{label}: must give exactly the slots {', '.join(slots)}")
                    continue
                values = {s: _scalar(value[s]) for s in slots}
            else:
                values = {slots[0]: _scalar(value)}
            if any(v is None or not v.strip() for v in values.values()):
                errors.append(f"{where}.variants.{label}: values must be non-empty text or numbers")
                continue
            clean = {k: v for k, v in values.items() if v is not None}
            key = tuple(sorted(clean.items()))
            if key in seen_values:
                errors.append(f"{where}.variants.{label}: the same values as {seen_values[key]!r}")
                continue
            seen_values[key] = label
            variants.append((label, clean))
        n_variants += len(variants)
        raw_at = a.get("thresholds", {})
        if not isinstance(raw_at, dict):
            errors.append(f"{where}.thresholds: must be a mapping of metric to number or null")
            raw_at = {}
        control = a.get("control", False)
        if not isinstance(control, bool):
            errors.append(f"{where}.control: must be true or false")
            control = False
        attr_thresholds = _thresholds(raw_at, f"{where}.thresholds", errors, allow_none=True)
        attributes.append(Attribute(aname, tuple(slots), tuple(variants), attr_thresholds, control))
    if n_variants > MAX_VARIANTS:
        errors.append(f"attributes: at most {MAX_VARIANTS} variants over all attributes, not {n_variants}")
    if attributes and all(a.control for a in attributes):
        errors.append("attributes: at least one attribute must be judged (not a control)")
    prompts = len(templates) * len(questions) * n_variants
    if prompts > MAX_PROMPTS:
        errors.append(f"the suite asks {prompts} prompts; at most {MAX_PROMPTS}")
    if errors:
        shown = errors[:50]
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"{source} is invalid: " + "; ".join(shown) + (f" (and {len(errors) - 50} more)" if len(errors) > 50 else ""),
            param="suite",
            details={"errors": errors},
        )
    document = json.loads(json.dumps(data, default=str))
    digest = "sha256:" + hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert isinstance(name, str)
    return BiasSuite(
        name=name,
        description=description,
        templates=tuple(templates),
        profile=profile,
        questions=tuple(questions),
        attributes=tuple(attributes),
        thresholds=thresholds,
        max_tokens=max_tokens,
        system_prompt=system_prompt,
        document=document,
        digest=digest,
    )


def _thresholds(raw: dict[Any, Any], where: str, errors: list[str], *, allow_none: bool) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric, value in raw.items():
        if metric not in METRICS:
            errors.append(f"{where}.{metric}: unknown metric (known: {', '.join(METRICS)})")
            continue
        if value is None and allow_none:
            out[metric] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10:
            errors.append(f"{where}.{metric}: must be a number from 0 to 10" + (" or null (not judged)" if allow_none else ""))
            continue
        out[metric] = float(value)
    return out
