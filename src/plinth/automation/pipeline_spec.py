"""A pipeline's spec: parsing and validation (every problem at once), references and conditions.

A pipeline document::

    name: retrain
    description: tune and evaluate on a new dataset version
    params:                      # name: default (null: required when a run starts)
      dataset: acme-faq@1
      steps: 3
    steps:
      - name: tune
        job: selftest            # a job kind of the durable queue ...
        spec: {steps: "${params.steps}", result: {adapter: "a-${params.dataset}"}}
        retries: 2               # extra attempts after a failure (default 0)
        backoff_s: 5             # the first retry waits this long, each later one twice as long
        timeout_s: 600           # a running attempt is cancelled after this long
      - name: gate
        action: check            # ... or a built-in in-process action
        spec: {that: "${steps.tune.outputs.steps}"}
        when: "${params.steps} > 1"   # skipped when false
        needs: [tune]            # explicit dependencies (references add their own)
        cache: false             # default true: same inputs digest -> the earlier output

References: ``${params.NAME}``, ``${steps.STEP.outputs.KEY[.KEY...]}``, ``${steps.STEP.state}``,
``${run.id}``, ``${run.pipeline}``, ``${trigger.KEY}``. A string that is exactly one reference
takes the referenced value (a number stays a number); otherwise references are formatted into
the string. ``when`` is a small expression: references, literals (numbers, strings, true,
false, null, lists), comparisons (``== != < <= > >= in not in``), ``and``, ``or``, ``not``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plinth.domain.pipelines import PIPELINE_NAME_RE, STEP_NAME_RE
from plinth.errors import ErrorCode, PlinthError

REF_RE = re.compile(r"\$\{\s*([^{}]+?)\s*\}")
_REF_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
MAX_STEPS = 100
MAX_RETRIES = 20
MAX_TIMEOUT_S = 7 * 24 * 3600.0
_STEP_FIELDS = {"name", "job", "action", "spec", "needs", "when", "retries", "backoff_s", "timeout_s", "cache", "resources", "queue"}
_DOC_FIELDS = {"name", "description", "params", "steps", "apiVersion", "kind", "metadata"}


@dataclass(frozen=True)
class Problem:
    param: str
    message: str

    def public_dict(self) -> dict[str, str]:
        return {"param": self.param, "message": self.message}


@dataclass(frozen=True)
class StepSpec:
    name: str
    job: str | None
    action: str | None
    spec: dict[str, Any]
    needs: tuple[str, ...]
    when: str | None
    retries: int = 0
    backoff_s: float = 0.0
    timeout_s: float | None = None
    cache: bool = True
    queue: str | None = None
    #: every step it depends on: ``needs`` and the steps its spec and condition refer to
    depends: tuple[str, ...] = ()

    @property
    def runs(self) -> str:
        return f"job {self.job}" if self.job else f"action {self.action}"


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    params: dict[str, Any]
    steps: tuple[StepSpec, ...]
    raw: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> StepSpec:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def digest(self) -> str:
        return digest_of(self.raw)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=str).encode()


def digest_of(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(value)).hexdigest()


def invalid(problems: list[Problem], what: str = "pipeline") -> PlinthError:
    first = problems[0]
    text = "; ".join(f"{p.param}: {p.message}" for p in problems)
    return PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"invalid {what} ({len(problems)} problem{'s' if len(problems) > 1 else ''}): {text}",
        param=first.param,
        details={"problems": [p.public_dict() for p in problems]},
    )


# -- references --------------------------------------------------------------------------------
def refs_in(value: Any) -> list[str]:
    """Every ``${...}`` reference inside a JSON value (strings of dicts and lists)."""
    out: list[str] = []
    if isinstance(value, str):
        out.extend(m.group(1) for m in REF_RE.finditer(value))
    elif isinstance(value, dict):
        for v in value.values():
            out.extend(refs_in(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(refs_in(v))
    return out


def check_ref(ref: str, params: Mapping[str, Any], steps: set[str], where: str) -> tuple[str | None, Problem | None]:
    """The step a reference depends on (if any), or the problem with it."""
    if not _REF_PATH_RE.match(ref):
        return None, Problem(where, f"bad reference ${{{ref}}}")
    parts = ref.split(".")
    head = parts[0]
    if head == "params":
        if len(parts) != 2:
            return None, Problem(where, f"bad reference ${{{ref}}}: use ${{params.NAME}}")
        if parts[1] not in params:
            known = ", ".join(sorted(params)) or "none"
            return None, Problem(where, f"unknown parameter {parts[1]!r} in ${{{ref}}} (declared: {known})")
        return None, None
    if head == "steps":
        if (
            len(parts) < 3
            or parts[2] not in ("outputs", "state")
            or (parts[2] == "outputs" and len(parts) < 4)
            or (parts[2] == "state" and len(parts) != 3)
        ):
            return None, Problem(where, f"bad reference ${{{ref}}}: use ${{steps.STEP.outputs.KEY}} or ${{steps.STEP.state}}")
        if parts[1] not in steps:
            return None, Problem(where, f"unknown step {parts[1]!r} in ${{{ref}}}")
        return parts[1], None
    if head == "run":
        if len(parts) != 2 or parts[1] not in ("id", "pipeline", "version"):
            return None, Problem(where, f"bad reference ${{{ref}}}: use ${{run.id}}, ${{run.pipeline}} or ${{run.version}}")
        return None, None
    if head == "trigger":
        return None, None
    return None, Problem(where, f"unknown reference ${{{ref}}}: references start with params., steps., run. or trigger.")


class Unresolved(Exception):
    """A reference to an output that does not exist."""


def lookup(ref: str, context: Mapping[str, Any]) -> Any:
    value: Any = context
    for part in ref.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise Unresolved(f"${{{ref}}} does not resolve (no {part!r})")
    return value


def resolve(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with every reference replaced from ``context`` (Unresolved when one is missing)."""
    if isinstance(value, str):
        m = REF_RE.fullmatch(value.strip())
        if m:
            return lookup(m.group(1), context)
        return REF_RE.sub(lambda mm: _text(lookup(mm.group(1), context)), value)
    if isinstance(value, dict):
        return {k: resolve(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, context) for v in value]
    return value


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


# -- conditions --------------------------------------------------------------------------------
_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Lt: lambda a, b: bool(a < b),
    ast.LtE: lambda a, b: bool(a <= b),
    ast.Gt: lambda a, b: bool(a > b),
    ast.GtE: lambda a, b: bool(a >= b),
    ast.In: lambda a, b: bool(a in b),
    ast.NotIn: lambda a, b: bool(a not in b),
}
_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def parse_condition(text: str) -> tuple[ast.Expression, list[str]]:
    """The expression (references replaced by names ``__r0``...) and the references; raises
    ValueError naming what is not allowed."""
    if len(text) > 2000:
        raise ValueError("a condition is at most 2000 characters")
    refs: list[str] = []

    def sub(m: re.Match[str]) -> str:
        refs.append(m.group(1))
        return f"__r{len(refs) - 1}"

    source = REF_RE.sub(sub, text)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an expression: {e.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError("the condition is nested too deeply") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in _NAMES and not re.fullmatch(r"__r\d+", node.id):
                raise ValueError(f"unknown name {node.id!r} (write references as ${{params.x}})")
        elif (
            not isinstance(
                node,
                (
                    ast.Expression,
                    ast.BoolOp,
                    ast.And,
                    ast.Or,
                    ast.UnaryOp,
                    ast.Not,
                    ast.USub,
                    ast.Compare,
                    ast.Constant,
                    ast.List,
                    ast.Tuple,
                    ast.Load,
                ),
            )
            and type(node) not in _CMP
        ):
            raise ValueError(f"{type(node).__name__} is not allowed in a condition")
    return tree, refs


def evaluate_condition(text: str, context: Mapping[str, Any]) -> bool:
    tree, refs = parse_condition(text)
    values = [lookup(r, context) for r in refs]

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return _NAMES[node.id] if node.id in _NAMES else values[int(node.id[3:])]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return (not v) if isinstance(node.op, ast.Not) else -v
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(ev(v) for v in node.values)
            return any(ev(v) for v in node.values)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = ev(comp)
                try:
                    ok = _CMP[type(op)](left, right)
                except TypeError as e:
                    raise Unresolved(f"cannot compare {left!r} and {right!r}: {e}") from None
                if not ok:
                    return False
                left = right
            return True
        raise Unresolved(f"{type(node).__name__} is not allowed")  # pragma: no cover - parse_condition refused it

    return bool(ev(tree))


# -- parsing -----------------------------------------------------------------------------------
def parse_pipeline(
    doc: Any,
    *,
    job_kinds: set[str],
    actions: set[str],
) -> PipelineSpec:
    """Validate a pipeline document; PlinthError(invalid_request) listing every problem."""
    problems: list[Problem] = []
    if not isinstance(doc, dict):
        raise invalid([Problem("pipeline", f"must be an object, got {type(doc).__name__}")])
    # a project file (apiVersion/kind/metadata/spec) carries the pipeline in its spec
    if "spec" in doc and isinstance(doc.get("spec"), dict) and "steps" in doc["spec"]:
        meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
        doc = {"name": meta.get("name", doc.get("name")), **doc["spec"]}
    for k in sorted(set(doc) - _DOC_FIELDS):
        problems.append(Problem(k, f"unknown field {k!r}; known: name, description, params, steps"))
    name = doc.get("name")
    if not isinstance(name, str) or not PIPELINE_NAME_RE.match(name):
        problems.append(Problem("name", f"invalid pipeline name {name!r}: 1-63 lowercase letters, digits, '.', '_' or '-'"))
    description = doc.get("description", "")
    if not isinstance(description, str):
        problems.append(Problem("description", "must be a string"))
        description = ""
    params = doc.get("params", {}) or {}
    if not isinstance(params, dict):
        problems.append(Problem("params", "must be an object of parameter names and defaults"))
        params = {}
    try:
        canonical(params)
    except (TypeError, ValueError) as e:
        problems.append(Problem("params", f"must be JSON: {e}"))
        params = {}
    for p in params:
        if not isinstance(p, str) or not STEP_NAME_RE.match(p):
            problems.append(Problem(f"params.{p}", "parameter names are 1-63 lowercase letters, digits or '_', starting with a letter"))
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(Problem("steps", "must be a non-empty list of steps"))
        raw_steps = []
    if len(raw_steps) > MAX_STEPS:
        problems.append(Problem("steps", f"at most {MAX_STEPS} steps are allowed"))
    names: list[str] = []
    for i, s in enumerate(raw_steps):
        n = s.get("name") if isinstance(s, dict) else None
        if isinstance(n, str) and STEP_NAME_RE.match(n):
            if n in names:
                problems.append(Problem(f"steps[{i}].name", f"duplicate step name {n!r}"))
            names.append(n)
    known_steps = set(names)
    steps: list[StepSpec] = []
    for i, s in enumerate(raw_steps):
        where = f"steps[{i}]"
        if not isinstance(s, dict):
            problems.append(Problem(where, "must be an object"))
            continue
        for k in sorted(set(s) - _STEP_FIELDS):
            problems.append(Problem(f"{where}.{k}", f"unknown field {k!r}; known: {', '.join(sorted(_STEP_FIELDS))}"))
        sname = s.get("name")
        if not isinstance(sname, str) or not STEP_NAME_RE.match(sname):
            problems.append(
                Problem(f"{where}.name", f"invalid step name {sname!r}: 1-63 lowercase letters, digits or '_', starting with a letter")
            )
            sname = f"#{i}"
        where = f"steps.{sname}" if not sname.startswith("#") else where
        job, action = s.get("job"), s.get("action")
        if (job is None) == (action is None):
            problems.append(Problem(where, "give exactly one of job (a job kind) or action (a built-in action)"))
        if job is not None and job not in job_kinds:
            problems.append(Problem(f"{where}.job", f"unknown job kind {job!r}; known: {', '.join(sorted(job_kinds))}"))
        if action is not None and action not in actions:
            problems.append(Problem(f"{where}.action", f"unknown action {action!r}; known: {', '.join(sorted(actions))}"))
        spec = s.get("spec", {}) or {}
        if not isinstance(spec, dict):
            problems.append(Problem(f"{where}.spec", "must be an object"))
            spec = {}
        try:
            canonical(spec)
        except (TypeError, ValueError) as e:
            problems.append(Problem(f"{where}.spec", f"must be JSON: {e}"))
        needs = s.get("needs", []) or []
        if isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            problems.append(Problem(f"{where}.needs", "must be a list of step names"))
            needs = []
        depends: list[str] = []
        for n in needs:
            if n not in known_steps:
                problems.append(Problem(f"{where}.needs", f"unknown step {n!r}"))
            elif n == sname:
                problems.append(Problem(f"{where}.needs", "a step cannot need itself"))
            else:
                depends.append(n)
        for ref in refs_in(spec):
            dep, problem = check_ref(ref, params, known_steps, f"{where}.spec")
            if problem:
                problems.append(problem)
            elif dep is not None:
                depends.append(dep)
        when = s.get("when")
        if when is not None:
            if isinstance(when, bool):
                when = "true" if when else "false"
            if not isinstance(when, str):
                problems.append(Problem(f"{where}.when", "must be a condition (a string)"))
                when = None
            else:
                try:
                    _, wrefs = parse_condition(when)
                except ValueError as e:
                    problems.append(Problem(f"{where}.when", str(e)))
                    wrefs = []
                for ref in wrefs:
                    dep, problem = check_ref(ref, params, known_steps, f"{where}.when")
                    if problem:
                        problems.append(problem)
                    elif dep is not None:
                        depends.append(dep)
        if sname in depends:
            problems.append(Problem(where, "a step cannot refer to its own outputs"))
            depends = [d for d in depends if d != sname]
        retries = s.get("retries", 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            problems.append(Problem(f"{where}.retries", f"must be an integer from 0 to {MAX_RETRIES}"))
            retries = 0
        backoff = s.get("backoff_s", 0)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 0 <= backoff <= 86400:
            problems.append(Problem(f"{where}.backoff_s", "must be a number of seconds from 0 to 86400"))
            backoff = 0
        timeout = s.get("timeout_s")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_S):
            problems.append(Problem(f"{where}.timeout_s", f"must be a number of seconds above 0 and at most {int(MAX_TIMEOUT_S)}"))
            timeout = None
        cache = s.get("cache", True)
        if not isinstance(cache, bool):
            problems.append(Problem(f"{where}.cache", "must be true or false"))
            cache = True
        queue = s.get("queue")
        if queue is not None and not isinstance(queue, str):
            problems.append(Problem(f"{where}.queue", "must be a queue name"))
            queue = None
        steps.append(
            StepSpec(
                name=sname,
                job=job if isinstance(job, str) else None,
                action=action if isinstance(action, str) else None,
                spec=spec,
                needs=tuple(n for n in needs if isinstance(n, str)),
                when=when,
                retries=retries,
                backoff_s=float(backoff),
                timeout_s=None if timeout is None else float(timeout),
                cache=cache,
                queue=queue,
                depends=tuple(dict.fromkeys(depends)),
            )
        )
    cycle = find_cycle({s.name: s.depends for s in steps if not s.name.startswith("#")})
    if cycle:
        problems.append(Problem("steps", f"the steps form a cycle: {' -> '.join(cycle)}"))
    if problems:
        raise invalid(problems)
    assert isinstance(name, str)
    raw = {
        "name": name,
        "description": description,
        "params": params,
        "steps": [
            {k: v for k, v in s.items() if k != "needs" or v} if isinstance(s, dict) else s  # canonical form, stable digest
            for s in raw_steps
        ],
    }
    return PipelineSpec(name=name, description=description, params=dict(params), steps=tuple(steps), raw=raw)


def find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle of the dependency graph (as a path that ends where it starts), or None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = grey
        stack.append(n)
        for d in graph.get(n, ()):
            if d not in color:
                continue
            if color[d] == grey:
                return [*stack[stack.index(d) :], d]
            if color[d] == white:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        color[n] = black
        return None

    for n in graph:
        if color[n] == white:
            found = visit(n)
            if found:
                return found
    return None
