"""Tool calling for ``/v1/chat/completions`` (see docs/adr/0118).

A request's ``tools`` and ``tool_choice`` (or the legacy ``functions``/``function_call``)
become a :class:`ToolPlan`:

- **The prompt.** Where the model's chat template lays out tools itself (it reads a
  ``tools`` variable), the template gets them in the OpenAI shape and the conversation's
  assistant ``tool_calls`` and ``tool`` messages as they are. Otherwise plinth's documented
  default applies: a system-prompt section lists each tool's name, description and
  parameters as JSON and asks for calls written as ``<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>``; earlier calls are written back that way and tool results are sent as
  a user turn wrapped in ``<tool_response>``.
- **Forcing.** ``required`` and a named function are enforced by constrained decoding: the
  answer is constrained to ``{"name": <one of the allowed tools>, "arguments": <that tool's
  parameters schema>}`` (the default format also starts the answer with ``<tool_call>``).
  A forced answer is exactly one call.
- **Parsing.** :class:`ToolCallParser` reads the generated text as it streams: text before a
  call is content, each complete ``<tool_call>`` block naming a declared tool becomes a
  :class:`ToolCall` (several blocks: parallel calls, unless ``parallel_tool_calls`` is
  false, which keeps the first), and an answer that is nothing but such a JSON object (as
  models trained on other formats write) is a call too. A block that does not parse or names
  no declared tool stays content: nothing the model wrote is dropped.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes import OutputConstraint
from plinth.serving.structured import check_schema, relax_schema

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
#: what the default format's forced answers start with (written into the prompt)
FORCED_PREFILL = OPEN + "\n"
#: written after tool results in the default format
RESULTS_PROMPT = "Use the tool results above to answer."


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool = False

    def openai(self) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}


@dataclass
class ToolCall:
    """One call the model made: ``arguments`` is a JSON text, as OpenAI sends it."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: "call_" + secrets.token_hex(12))

    def openai(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        if index is not None:
            out = {"index": index, **out}
        return out

    def legacy(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


def _hoist_defs(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``schema`` without its ``$defs``/``definitions`` and those definitions under prefixed
    names, every reference to them rewritten to ``#/$defs/<prefix><name>``."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            defs[prefix + name] = sub

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in ("$defs", "definitions") and node is schema:
                    continue
                if k == "$ref" and isinstance(v, str):
                    for key in ("$defs", "definitions"):
                        if v.startswith(f"#/{key}/"):
                            v = "#/$defs/" + prefix + v[len(key) + 3 :]
                            break
                out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    return walk(schema), {name: walk(sub) for name, sub in defs.items()}


def _fail(message: str, param: str) -> PlinthError:
    return PlinthError(ErrorCode.INVALID_REQUEST, message, param=param)


@dataclass
class ToolPlan:
    """What a request's tools ask of the prompt, the decoder and the answer's shape."""

    tools: list[ToolSpec]
    choice: str  # "auto" | "required" | "none" | "function" (then ``forced_name``)
    forced_name: str | None = None
    parallel: bool = True
    legacy: bool = False  # asked with ``functions``: the answer carries ``function_call``

    @property
    def active(self) -> bool:
        """Whether the model is offered the tools at all (``none`` offers none)."""
        return bool(self.tools) and self.choice != "none"

    @property
    def forced(self) -> bool:
        return self.active and self.choice in ("required", "function")

    def allowed(self) -> list[ToolSpec]:
        if self.choice == "function":
            return [t for t in self.tools if t.name == self.forced_name]
        return self.tools

    def constraint(self) -> OutputConstraint | None:
        """For a forced call: the JSON the answer must be (one call to an allowed tool)."""
        if not self.forced:
            return None
        branches, defs = [], {}
        for i, t in enumerate(self.allowed()):
            # a tool's own definitions ($defs) move to the root, where its references now point
            params, own = _hoist_defs(t.parameters if t.strict else relax_schema(t.parameters), f"t{i}_")
            defs.update(own)
            branches.append(
                {
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": params},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
            )
        schema: dict[str, Any] = branches[0] if len(branches) == 1 else {"anyOf": branches}
        if defs:
            schema = {**schema, "$defs": defs}
        return OutputConstraint(kind="json_schema", schema=schema)

    def system_text(self) -> str:
        """The default format's instructions (for templates that do not lay out tools)."""
        intro = "You can call the following tools. Each is a JSON object: its name, what it does, the JSON schema of its arguments:"
        lines = [intro]
        for t in self.allowed():
            lines.append(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters}, ensure_ascii=False))
        lines.append(
            "To call a tool, answer with the call written as\n"
            f'{OPEN}\n{{"name": "<tool name>", "arguments": {{<the arguments>}}}}\n{CLOSE}\n'
            + ("Write one such block per call; several calls may follow each other. " if self.parallel else "Make at most one call. ")
            + (
                "You must call a tool now."
                if self.forced
                else "When no tool is needed, answer the user directly. A tool's result comes back to you in <tool_response> tags."
            )
        )
        return "\n".join(lines)

    def parser(self, *, remote: bool = False) -> ToolCallParser:
        """The answer's reader; a remote engine's calls come as blocks, forced or not."""
        return ToolCallParser({t.name for t in self.allowed()}, forced=self.forced and not remote, parallel=self.parallel)

    def wire_choice(self) -> Any:
        """``tool_choice`` as OpenAI's API takes it (for a remote engine)."""
        if self.choice == "function":
            return {"type": "function", "function": {"name": self.forced_name}}
        return self.choice


def plan_from(req: Any) -> ToolPlan | None:
    """The plan of a validated chat request (``tools``/``tool_choice`` or the legacy
    ``functions``/``function_call``), or None when it brings no tools."""
    legacy = bool(req.functions)
    fns = list(req.functions) if legacy else [t.function for t in (req.tools or [])]
    choice_in: Any = req.function_call if legacy else req.tool_choice
    param, cparam = ("functions", "function_call") if legacy else ("tools", "tool_choice")
    if not fns:
        if choice_in not in (None, "none", "auto"):
            raise _fail(f"{cparam} asks for a call but no tools were given", cparam)
        return None
    specs: list[ToolSpec] = []
    for i, fn in enumerate(fns):
        where = f"{param}[{i}]" + ("" if legacy else ".function") + ".parameters"
        params = fn.parameters if fn.parameters is not None else {"type": "object", "properties": {}}
        strict = bool(fn.strict)
        try:
            check_schema(params, subset=strict)
        except PlinthError as e:
            raise _fail(e.message, where) from None
        if params.get("type", "object") != "object":
            raise _fail("a tool's parameters must be a JSON schema of type 'object'", where)
        specs.append(ToolSpec(name=fn.name, description=fn.description or "", parameters=params, strict=strict))
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _fail(f"tool names must be unique; repeated: {', '.join(dup)}", param)
    choice, forced = "auto", None
    if isinstance(choice_in, str):
        choice = choice_in
    elif choice_in is not None:
        forced = choice_in.name if legacy else choice_in.function.name
        if forced not in names:
            raise _fail(f"{cparam} names the function {forced[:64]!r}, which is not among the tools given", cparam)
        choice = "function"
    parallel = req.parallel_tool_calls is not False and not legacy
    return ToolPlan(tools=specs, choice=choice, forced_name=forced, parallel=parallel, legacy=legacy)


# -- the conversation ---------------------------------------------------------------------
def _args_object(arguments: str) -> Any:
    """A call's JSON-text arguments as an object where they parse (else the text as sent)."""
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments


def _call_text(name: str, arguments: str) -> str:
    args = _args_object(arguments)
    return f"{OPEN}\n{json.dumps({'name': name, 'arguments': args}, ensure_ascii=False)}\n{CLOSE}"


def default_format_messages(messages: list[dict[str, Any]], plan: ToolPlan | None) -> list[dict[str, Any]]:
    """``messages`` (role/content dicts that may carry ``tool_calls``) written in the default
    format: calls as ``<tool_call>`` blocks in the assistant's text, tool results as one user
    turn of ``<tool_response>`` blocks, and the tools described in the system prompt."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            text = "\n".join([m.get("content") or ""] + [_call_text(c["name"], c["arguments"]) for c in m["tool_calls"]]).strip()
            out.append({"role": "assistant", "content": text})
        elif m["role"] == "tool":
            block = f"<tool_response>\n{m.get('content') or ''}\n</tool_response>"
            if out and out[-1].get("_tool_turn"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_turn": True})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    for m in out:
        if m.pop("_tool_turn", None):  # small models echo a bare result back; a plain ask helps
            m["content"] += "\n" + RESULTS_PROMPT
    if plan is not None and plan.active:
        section = plan.system_text()
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": (out[0]["content"] + "\n\n" + section).strip()}
        else:
            out.insert(0, {"role": "system", "content": section})
    return out


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` in OpenAI's wire shape again (for a remote engine)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("tool_calls"):
            calls = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in m["tool_calls"]
            ]
            out.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": calls})
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m.get("tool_call_id") or "", "content": m.get("content") or ""})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return out


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` for a template that lays out tools itself: calls in the shape chat
    templates read (arguments as an object where they parse)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        m2 = {k: v for k, v in m.items() if v is not None}
        if m.get("tool_calls"):
            m2["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": _args_object(c["arguments"])}}
                for c in m["tool_calls"]
            ]
            m2.setdefault("content", "")
        out.append(m2)
    return out


# -- reading the answer ---------------------------------------------------------------------
class ToolCallParser:
    """Splits generated text into content and tool calls as it streams (see the module doc).

    :meth:`feed` returns the content that can be sent now and the calls completed by this
    piece; :meth:`flush` ends the answer. A forced answer is read whole at the end.
    """

    def __init__(self, names: set[str], *, forced: bool = False, parallel: bool = True) -> None:
        self.names = names
        self.forced = forced
        self.parallel = parallel
        self.calls: list[ToolCall] = []
        self._buf = ""  # held back: a possible tag start, a block, or a bare JSON answer
        self._in_block = False
        self._bare: bool | None = None  # None: undecided (nothing but whitespace seen yet)
        self._ws = ""  # trailing whitespace held back (see _scan)

    def feed(self, piece: str) -> tuple[str, list[ToolCall]]:
        if not piece:
            return "", []
        self._buf += piece
        if self.forced:
            return "", []
        if self._bare is None:
            head = self._buf.lstrip()
            if not head:
                return "", []
            self._bare = head.startswith("{")
        if self._bare:
            return "", []  # a whole-answer JSON call is decided at the end
        return self._scan(final=False)

    def _scan(self, *, final: bool) -> tuple[str, list[ToolCall]]:
        out: list[str] = []
        made: list[ToolCall] = []

        def emit(segment: str) -> None:
            # Whitespace next to a call is not content: trailing whitespace is held until
            # content follows it, and dropped when a call follows.
            if not segment:
                return
            held = self._ws + segment
            body = held.rstrip()
            if body:
                out.append(body)
            self._ws = held[len(body) :]

        def call(c: ToolCall | None, raw: str) -> None:
            if c is None:
                emit(raw)
                return
            self._ws = ""
            made.extend(self._take(c))

        while self._buf:
            if self._in_block:
                end = self._buf.find(CLOSE)
                if end < 0:
                    if final:  # an unclosed block: a call if its JSON is whole, else content
                        call(self._call_of(self._buf), OPEN + self._buf)
                        self._buf = ""
                    break
                body, self._buf = self._buf[:end], self._buf[end + len(CLOSE) :]
                self._in_block = False
                call(self._call_of(body), OPEN + body + CLOSE)
                continue
            start = self._buf.find(OPEN)
            if start >= 0:
                emit(self._buf[:start])
                self._buf = self._buf[start + len(OPEN) :]
                self._in_block = True
                continue
            keep = 0 if final else _partial_suffix(self._buf, OPEN)
            emit(self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            break
        if final and not self.calls:
            out.append(self._ws)
            self._ws = ""
        return "".join(out), made

    def _take(self, call: ToolCall) -> list[ToolCall]:
        if self.calls and not self.parallel:
            return []
        self.calls.append(call)
        return [call]

    def _call_of(self, text: str) -> ToolCall | None:
        try:
            obj = json.loads(text.strip())
        except ValueError:
            return None
        if not isinstance(obj, dict) or obj.get("name") not in self.names:
            return None
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):  # some models write the arguments as a JSON string
            try:
                args = json.loads(args)
            except ValueError:
                return None
        if not isinstance(args, dict):
            return None
        return ToolCall(name=obj["name"], arguments=json.dumps(args, ensure_ascii=False))

    def flush(self) -> tuple[str, list[ToolCall]]:
        if self.forced or self._bare:
            text, self._buf = self._buf, ""
            call = self._call_of(text)
            return ("", self._take(call)) if call is not None else (text, [])
        return self._scan(final=True)


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest suffix of ``text`` that starts ``tag`` (held back)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
