"""Guardrail policy documents: parsing, validation (every problem at once), digests.

A policy is YAML or JSON::

    apiVersion: plinth/v1
    kind: GuardrailPolicy
    name: acme-health
    description: Acme Health member assistant
    safe_answer: "I can't help with that. ..."
    rules:
      - detector: pii            # a registered detector kind
        on: [input, output]      # input, output, retrieved
        action: redact           # block | redact | flag
        actions: {CREDIT_CARD: block}   # per label
        patterns:                # the detector's own options
          - {type: MEMBER_ID, regex: 'ACM-\\d{7}'}
      - detector: toxicity
        action: block
        threshold: 0.5
    allow:                       # public values span findings may match without acting
      - {value: "1-800-555-0142", labels: [PHONE], note: Member Services}
      - Nurse Line               # a plain string: any label, text match

Every key of a rule besides ``detector``, ``id``, ``on``, ``action``, ``actions``,
``threshold``, ``safe_answer`` and ``enabled`` is an option of the detector kind and is
validated by its ``Options`` model.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import replace
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plinth.domain.guardrails import Action, Direction, Finding
from plinth.domain.numbers import VERSION_MAX, whole_number
from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.base import DetectorOptions, detector_kinds

API_VERSION = "plinth/v1"
KIND = "GuardrailPolicy"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,99}$")
MAX_POLICY_BYTES = 512 * 1024
DEFAULT_SAFE_ANSWER = "I'm sorry, I can't help with that request."
_RULE_KEYS = {"detector", "id", "on", "action", "actions", "threshold", "safe_answer", "enabled"}

#: the directions a rule of each built-in kind uses when ``on`` is not given
DEFAULT_DIRECTIONS: dict[str, list[str]] = {
    "pii": ["input", "output"],
    "secrets": ["input", "output"],
    "toxicity": ["input", "output"],
    "injection": ["input", "retrieved"],
    "topic": ["input"],
    "groundedness": ["output"],
}


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detector: str
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$")
    on: list[Direction]
    action: Action
    actions: dict[str, Action] = Field(default_factory=dict)
    threshold: float = Field(0.5, ge=0, le=1)
    safe_answer: str | None = Field(None, max_length=4000)
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        """True when some finding of this rule can block: its action, or one label's."""
        return self.action is Action.BLOCK or Action.BLOCK in self.actions.values()


#: at most this many allow-list entries in a policy
MAX_ALLOW = 1000
_DIGITS_ONLY = re.compile(r"^\+?[\d\s().\-/]+$")
_RULE_ACTIONS = [a.value for a in Action if a is not Action.ALLOW]


class AllowEntry(BaseModel):
    """A public value that span findings may match without acting: the organisation's own
    phone numbers, addresses, names of its services. A finding whose matched text is this
    value is recorded with action ``allow`` instead of being redacted or blocking."""

    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=200)
    #: the labels it applies to (empty: every label)
    labels: list[str] = Field(default_factory=list, max_length=50)
    #: ``digits``: only the digits are compared, so "(800) 555-0142" and "+1 800 555 0142"
    #: are "1-800-555-0142" (a country code of up to 3 digits may be left out on either side);
    #: ``text``: case- and space-folded, and a finding inside an occurrence of the value
    #: counts ("Line" inside "Nurse Line"). Default: ``digits`` for a value of digits and phone
    #: punctuation only, else ``text``.
    match: Literal["digits", "text"] | None = None
    note: str = Field("", max_length=200, description="what the value is (shown, never matched)")

    @model_validator(mode="after")
    def _normalised(self) -> AllowEntry:
        self.value = " ".join(unicodedata.normalize("NFKC", self.value).split())
        if not any(c.isalnum() for c in self.value):
            raise ValueError(f"value {self.value!r} has no letter or digit")
        if self.match is None:
            self.match = "digits" if _DIGITS_ONLY.match(self.value) else "text"
        digits = sum(c.isdigit() for c in self.value)
        if self.match == "digits" and not 5 <= digits <= 20:
            raise ValueError(f"value {self.value!r}: a digits match needs 5 to 20 digits, not {digits}")
        return self


class AllowList:
    """A policy's allow list compiled for matching findings (built once per policy version)."""

    def __init__(self, entries: list[AllowEntry]) -> None:
        self.entries = entries
        self._digits = [(i, e, _digits(e.value)) for i, e in enumerate(entries) if e.match == "digits"]
        self._texts = [(i, e, _text_pattern(e.value)) for i, e in enumerate(entries) if e.match == "text"]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def match(self, finding: Finding, text: str) -> int | None:
        """The index of the entry that allows ``finding`` (a span of ``text``), or None."""
        if finding.start is None or finding.end is None:
            return None
        s, e = finding.start, finding.end
        digits = _digits(text[s:e]) if self._digits else ""
        for i, entry, want in self._digits:
            if (not entry.labels or finding.label in entry.labels) and _same_number(digits, want):
                return i
        for i, entry, pattern in self._texts:
            if entry.labels and finding.label not in entry.labels:
                continue
            # the value as it occurs around the finding (a few characters of slack either side)
            lo, hi = max(0, s - len(entry.value) - 8), min(len(text), e + len(entry.value) + 8)
            for m in pattern.finditer(text, lo, hi):
                if m.start() <= s and e <= m.end():
                    return i
        return None

    def apply(self, findings: list[Finding], text: str) -> list[Finding]:
        """``findings`` with those on the list turned into ``allow`` findings."""
        if not self.entries:
            return findings
        out = []
        for f in findings:
            i = self.match(f, text)
            if i is not None:
                f = replace(f, action=Action.ALLOW, reason=f"{f.reason}; a public value on the policy's allow list (entry {i + 1})")
            out.append(f)
        return out


def _digits(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c.isdigit())


def _same_number(a: str, b: str) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 7 and len(long_) - len(short) <= 3 and long_.endswith(short)


def _text_pattern(value: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in value.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiVersion: str = API_VERSION  # the document's own key
    kind: str = KIND
    name: str
    description: str = Field("", max_length=2000)
    safe_answer: str = Field(DEFAULT_SAFE_ANSWER, min_length=1, max_length=4000)
    placeholder: str = Field("<{label}>", max_length=100)
    rules: list[RuleSpec]
    allow: list[AllowEntry] = Field(default_factory=list)


def parse_document(text: str, *, source: str = "policy") -> dict[str, Any]:
    """YAML (or JSON, which is YAML) text -> a mapping; PlinthError on anything else."""
    if len(text.encode("utf-8", "replace")) > MAX_POLICY_BYTES:
        raise PlinthError(ErrorCode.PAYLOAD_TOO_LARGE, f"{source} is larger than {MAX_POLICY_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{source} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{source} must be a mapping with 'name' and 'rules'")
    return data


def validate_policy(doc: dict[str, Any], *, name: str | None = None) -> PolicySpec:
    """Validate a policy document; one PlinthError lists every problem found.

    Each rule's options are checked by building its detector kind's ``Options`` and a
    detector instance (which compiles patterns and checks entity types), so a policy that
    validates also loads."""
    errors: list[str] = []
    doc = dict(doc)
    if name is not None:
        if doc.get("name") not in (None, name):
            errors.append(f"name: the document says {doc.get('name')!r} but the policy is {name!r}")
        doc["name"] = name
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key in doc and doc[key] != want:
            errors.append(f"{key}: must be {want!r}, not {doc[key]!r}")
    pname = doc.get("name")
    if not isinstance(pname, str) or not NAME_RE.match(pname):
        errors.append(f"name: {pname!r} is not a valid policy name (lower-case letters, digits, '-', '_', '.'; at most 100)")
    raw_rules = doc.get("rules")
    rules: list[dict[str, Any]] = []
    if not isinstance(raw_rules, list) or not raw_rules:
        errors.append("rules: a policy needs a non-empty list of rules")
        raw_rules = []
    kinds = detector_kinds()
    seen: set[str] = set()
    span_labels: set[str] = set()  # what the policy's span rules report (for 'allow')
    for i, raw in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{where}: must be a mapping with 'detector'")
            continue
        if True in raw:  # YAML 1.1 reads a bare `on:` key as the boolean true
            raw = {("on" if k is True else k): v for k, v in raw.items()}
        bad_keys = [k for k in raw if not isinstance(k, str)]
        if bad_keys:
            errors.append(f"{where}: keys must be strings, not {bad_keys!r}")
            continue
        kind = raw.get("detector")
        if not isinstance(kind, str) or kind not in kinds:
            errors.append(f"{where}.detector: unknown detector {kind!r}; known: {', '.join(sorted(kinds))}")
            continue
        cls = kinds[kind]
        rid = raw.get("id", kind)
        where = f"rules[{i}] ({rid})"
        if rid in seen:
            errors.append(f"{where}.id: {rid!r} is used by two rules; give one an 'id'")
        seen.add(rid)
        common = {k: v for k, v in raw.items() if k in _RULE_KEYS}
        options = {k: v for k, v in raw.items() if k not in _RULE_KEYS}
        common.setdefault("id", rid)
        common.setdefault("on", DEFAULT_DIRECTIONS.get(kind, ["input"]))
        common.setdefault("action", "redact" if cls.spans else "block")
        try:
            rule = RuleSpec(**common, options=options)
        except ValidationError as e:
            errors.extend(f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
            continue
        if Action.ALLOW in [rule.action, *rule.actions.values()]:
            use = ", ".join(_RULE_ACTIONS)
            errors.append(f"{where}.action: 'allow' is not a rule action (use {use}); list public values under the policy's 'allow'")
        bad_dirs = [d.value for d in rule.on if d not in cls.directions]
        if bad_dirs:
            errors.append(f"{where}.on: {kind} cannot check {', '.join(bad_dirs)}")
        every = [rule.action, *rule.actions.values()]
        if Action.REDACT in every and not cls.spans:
            errors.append(f"{where}.action: {kind} finds whole texts, not spans: use block or flag, not redact")
        try:
            opts = cls.Options(**options)
        except ValidationError as e:
            errors.extend(f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
            continue
        try:
            _check_instance(cls, rid, opts)
        except (ValueError, PlinthError) as e:
            errors.append(f"{where}: {getattr(e, 'message', e)}")
            continue
        labels = set(getattr(cls, "labels", ()))
        if cls.kind == "pii":
            labels |= {p.type for p in getattr(opts, "patterns", [])}
        if cls.spans and rule.enabled:
            span_labels |= labels
        unknown = sorted(set(rule.actions) - labels) if labels else []
        if unknown:
            errors.append(f"{where}.actions: unknown label(s) {', '.join(unknown)}; {kind} reports {', '.join(sorted(labels))}")
        rules.append(rule.model_dump(mode="json"))
    top = {k: v for k, v in doc.items() if k not in ("rules", "allow")}
    allow = _validate_allow(doc.get("allow"), span_labels, errors)
    spec: PolicySpec | None = None
    try:
        spec = PolicySpec(**top, rules=[])
    except ValidationError as e:
        errors.extend(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
    if spec is not None and "{label}" not in spec.placeholder:
        errors.append("placeholder: must contain {label}, e.g. '<{label}>'")
    if errors:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid guardrail policy: {'; '.join(errors)}",
            details={"errors": errors},
        )
    assert spec is not None
    return spec.model_copy(update={"rules": [RuleSpec(**r) for r in rules], "allow": allow})


def _validate_allow(raw: Any, span_labels: set[str], errors: list[str]) -> list[AllowEntry]:
    """The ``allow`` list: entries as mappings or plain strings; every problem into ``errors``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.append("allow: must be a list of values (a string, or a mapping with 'value')")
        return []
    if len(raw) > MAX_ALLOW:
        errors.append(f"allow: has {len(raw)} entries; at most {MAX_ALLOW} are allowed")
        return []
    if raw and not span_labels:
        errors.append("allow: the policy has no enabled span rule (pii, secrets) whose findings it could allow")
    out: list[AllowEntry] = []
    for i, item in enumerate(raw):
        where = f"allow[{i}]"
        if isinstance(item, (str, int)) and not isinstance(item, bool):
            item = {"value": str(item)}
        if not isinstance(item, dict):
            errors.append(f"{where}: must be a string or a mapping with 'value', not {type(item).__name__}")
            continue
        try:
            entry = AllowEntry(**item)
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                msg = str(err["msg"]).removeprefix("Value error, ")
                errors.append(f"{where}{'.' + loc if loc else ''}: {msg}")
            continue
        except TypeError:
            errors.append(f"{where}: keys must be strings")
            continue
        unknown = sorted(set(entry.labels) - span_labels) if span_labels else []
        if unknown:
            errors.append(f"{where}.labels: unknown label(s) {', '.join(unknown)}; the span rules report {', '.join(sorted(span_labels))}")
            continue
        out.append(entry)
    return out


def _check_instance(cls: Any, rid: str, opts: DetectorOptions) -> None:
    from plinth.guardrails.base import Resources

    cls(rid, opts, Resources(None))


def canonical(spec: PolicySpec) -> dict[str, Any]:
    """The stored form: rules with their options folded back in, defaults filled."""
    out = spec.model_dump(mode="json", exclude={"rules", "allow"})
    out["rules"] = []
    for r in spec.rules:
        d = r.model_dump(mode="json", exclude={"options"})
        d.update(r.options)
        out["rules"].append(d)
    if spec.allow:  # absent when empty: policies without one keep their digests
        out["allow"] = [a.model_dump(mode="json") for a in spec.allow]
    return out


def digest(doc: dict[str, Any]) -> str:
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def split_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name@version`` -> (name, version or None)."""
    name, sep, ver = ref.partition("@")
    if not sep:
        return name, None
    number = whole_number(ver, minimum=1, maximum=VERSION_MAX)
    if number is None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"policy reference {ref!r}: the version after '@' must be a whole number from 1 to {VERSION_MAX}"
        )
    return name, number


def to_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
