"""Reading dataset files (JSONL, CSV, Parquet) and validating their rows.

Every row is checked against the chat or prompt/completion schema
(:mod:`plinth.domain.datasets`); every problem is reported with its line (row for
Parquet), up to :data:`MAX_PROBLEMS`, all at once, and nothing is stored unless the whole
file is valid.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from plinth.domain.datasets import ROLES, SPLITS, DatasetFormat, DatasetProblem, SourceFormat
from plinth.errors import ErrorCode, PlinthError
from plinth.userfiles import open_user_file

MAX_PROBLEMS = 50
KEPT_FIELDS = ("id", "metadata")
_SUFFIXES = {
    ".jsonl": SourceFormat.JSONL,
    ".ndjson": SourceFormat.JSONL,
    ".json": SourceFormat.JSONL,
    ".csv": SourceFormat.CSV,
    ".parquet": SourceFormat.PARQUET,
    ".pq": SourceFormat.PARQUET,
}
Progress = Callable[[int], None]


@dataclass
class ParsedDataset:
    format: DatasetFormat
    rows: list[dict[str, Any]]
    ignored_fields: Counter[str] = field(default_factory=Counter)


def detect_format(path: Path, head: bytes) -> SourceFormat:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    if head.startswith(b"PAR1"):
        return SourceFormat.PARQUET
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return SourceFormat.JSONL
    raise PlinthError(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"cannot tell the format of {path.name!r}: name it .jsonl, .csv or .parquet, or pass the format",
        param="format",
    )


def parse_file(path: Path, fmt: SourceFormat, progress: Progress | None = None, *, fh: BinaryIO | None = None) -> ParsedDataset:
    """Read and validate every row; PlinthError(invalid_request) listing the problems if any.

    ``fh``: the file already open (read from its start); else ``path`` is opened with
    :func:`plinth.userfiles.open_user_file`. ``path`` names the file in messages.
    """
    if fh is None:
        with open_user_file(path, what="dataset file") as opened:
            return parse_file(path, fmt, progress, fh=opened)
    checker = _Checker()
    if fmt is SourceFormat.JSONL:
        records = _jsonl_records(fh, checker, progress)
    elif fmt is SourceFormat.CSV:
        records = _csv_records(path, fh, checker, progress)
    else:
        records = _parquet_records(path, fh, checker, progress)
    for where, raw in records:
        checker.check(where, raw)
    return checker.result(path.name)


# -- readers: (where, raw object) ----------------------------------------------------------------
def _jsonl_records(f: BinaryIO, checker: _Checker, progress: Progress | None) -> Iterator[tuple[dict[str, int], Any]]:
    for number, raw in enumerate(f, start=1):
        if progress is not None:
            progress(len(raw))
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        where = {"line": number}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            checker.problem(where, f"not valid UTF-8 (byte {e.start + 1})")
            continue
        try:
            yield where, json.loads(text)
        except json.JSONDecodeError as e:
            checker.problem(where, f"not valid JSON: {e.msg} (column {e.colno})")


def _csv_records(path: Path, f: BinaryIO, checker: _Checker, progress: Progress | None) -> Iterator[tuple[dict[str, int], Any]]:
    raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _invalid(path.name, [DatasetProblem(f"not valid UTF-8 (byte {e.start + 1})", line=line)], 1) from None
    if progress is not None:
        progress(len(text.encode("utf-8")))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise _invalid(path.name, [DatasetProblem(f"not valid CSV: {e}", line=1)], 1) from None
    columns = [h.strip() for h in header]
    if not ({"prompt", "completion"} <= set(columns) or "messages" in columns):
        raise _invalid(
            path.name,
            [DatasetProblem(f"the header needs columns prompt and completion, or messages (as JSON); found: {', '.join(columns)}", line=1)],
            1,
        )
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            checker.problem({"line": start}, f"not valid CSV: {e}")
            return
        where = {"line": start}
        start = reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(columns):
            checker.problem(where, f"has {len(values)} fields; the header has {len(columns)}")
            continue
        record: dict[str, Any] = dict(zip(columns, values, strict=True))
        if "messages" in record:
            try:
                record["messages"] = json.loads(record["messages"])
            except json.JSONDecodeError as e:
                checker.problem(where, f"column messages is not valid JSON: {e.msg}")
                continue
        for key in ("split", "id"):
            if key in record and not record[key]:
                del record[key]
        yield where, record


def _parquet_records(path: Path, f: BinaryIO, checker: _Checker, progress: Progress | None) -> Iterator[tuple[dict[str, int], Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PlinthError(
            ErrorCode.RUNTIME_UNAVAILABLE,
            "reading Parquet needs pyarrow, which is not installed: pip install 'plinth[parquet]' (or pyarrow)",
        ) from None
    try:
        pf = pq.ParquetFile(f)
    except PlinthError:
        raise  # the read limits of the open file
    except Exception as e:  # pyarrow raises several types for damaged files
        raise _invalid(path.name, [DatasetProblem(f"not a readable Parquet file: {e}")], 1) from None
    if progress is not None:
        progress(os.fstat(f.fileno()).st_size)
    number = 0
    try:
        for batch in pf.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                number += 1
                yield {"row": number}, {k: v for k, v in record.items() if v is not None}
    except PlinthError:
        raise
    except Exception as e:
        checker.problem({"row": number + 1}, f"cannot be read: {e}")


# -- validation ----------------------------------------------------------------------------------
class _Checker:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.problems: list[DatasetProblem] = []
        self.total_problems = 0
        self.format: DatasetFormat | None = None
        self.format_where = ""
        self.ignored: Counter[str] = Counter()

    def problem(self, where: dict[str, int], message: str) -> None:
        self.total_problems += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(DatasetProblem(message, **where))

    def check(self, where: dict[str, int], raw: Any) -> None:
        if not isinstance(raw, dict):
            self.problem(where, f"expected an object, got {_kind(raw)}")
            return
        has_chat = "messages" in raw
        has_pc = "prompt" in raw or "completion" in raw
        if has_chat and has_pc:
            self.problem(where, "has both 'messages' and 'prompt'/'completion': use one form per row")
            return
        if not has_chat and not has_pc:
            self.problem(where, "needs 'messages' (chat form) or 'prompt' and 'completion'")
            return
        fmt = DatasetFormat.CHAT if has_chat else DatasetFormat.PROMPT_COMPLETION
        if self.format is None:
            self.format, self.format_where = fmt, _where(where)
        elif fmt is not self.format:
            self.problem(where, f"a {fmt.value} row in a {self.format.value} dataset ({self.format_where} set the form)")
            return
        before = self.total_problems
        row = self._chat(where, raw["messages"]) if has_chat else self._prompt_completion(where, raw)
        split = raw.get("split")
        if split is not None:
            if split not in SPLITS:
                self.problem(where, f"'split' must be train or validation; got {split!r}")
            else:
                row["split"] = split
        for key in KEPT_FIELDS:
            if key in raw:
                row[key] = raw[key]
        for key in raw:
            if key not in ("messages", "prompt", "completion", "split", *KEPT_FIELDS):
                self.ignored[key] += 1
        if self.total_problems == before:
            self.rows.append(row)

    def _chat(self, where: dict[str, int], messages: Any) -> dict[str, Any]:
        if not isinstance(messages, list) or not messages:
            self.problem(where, f"'messages' must be a non-empty list; got {_kind(messages)}")
            return {}
        out = []
        for i, m in enumerate(messages):
            p = f"messages[{i}]"
            if not isinstance(m, dict):
                self.problem(where, f"{p} must be an object with role and content; got {_kind(m)}")
                return {}
            role = m.get("role")
            if role == "developer":
                role = "system"
            if role in ("tool", "function") or "tool_calls" in m or "function_call" in m:
                self.problem(where, f"{p}: tool calls are not supported in training data")
                return {}
            if role not in ROLES:
                self.problem(where, f"{p}.role must be one of {', '.join(ROLES)}; got {role!r}")
                return {}
            content = _text(m.get("content"))
            if content is None:
                self.problem(where, f"{p}.content must be a string (or a list of text parts); got {_kind(m.get('content'))}")
                return {}
            if role != "system" and not content.strip():
                self.problem(where, f"{p}.content is empty")
                return {}
            if role == "system" and i != 0:
                self.problem(where, f"{p}: a system message must be the first message")
                return {}
            msg: dict[str, Any] = {"role": role, "content": content}
            if "weight" in m:
                if role != "assistant" or m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
                    self.problem(where, f"{p}.weight must be 0 or 1, on an assistant message")
                    return {}
                msg["weight"] = int(m["weight"])
            for key in m:
                if key not in ("role", "content", "weight", "name"):
                    self.ignored[f"messages.{key}"] += 1
            out.append(msg)
        if out[-1]["role"] != "assistant":
            self.problem(where, "the last message must be the assistant's: it is what the model learns")
            return {}
        if not any(msg["role"] == "user" for msg in out):
            self.problem(where, "needs at least one user message")
            return {}
        if not any(msg["role"] == "assistant" and msg.get("weight", 1) for msg in out):
            self.problem(where, "every assistant message has weight 0: nothing would be learned")
            return {}
        return {"messages": out}

    def _prompt_completion(self, where: dict[str, int], raw: dict[str, Any]) -> dict[str, Any]:
        prompt, completion = raw.get("prompt"), raw.get("completion")
        for key, value in (("prompt", prompt), ("completion", completion)):
            if not isinstance(value, str):
                self.problem(where, f"'{key}' must be a string; got {_kind(value)}")
                return {}
        assert isinstance(prompt, str) and isinstance(completion, str)
        if not completion.strip():
            self.problem(where, "'completion' is empty")
            return {}
        if not prompt.strip():
            self.problem(where, "'prompt' is empty")
            return {}
        return {"prompt": prompt, "completion": completion}

    def result(self, name: str) -> ParsedDataset:
        if self.problems:
            raise _invalid(name, self.problems, self.total_problems)
        if not self.rows or self.format is None:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"dataset file {name!r} has no rows")
        return ParsedDataset(self.format, self.rows, self.ignored)


def _invalid(name: str, problems: list[DatasetProblem], total: int) -> PlinthError:
    shown = "; ".join(str(p) for p in problems[:5])
    more = f" (and {total - 5} more)" if total > 5 else ""
    return PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"dataset file {name!r} has {total} problem{'s' if total != 1 else ''}: {shown}{more}",
        details={"problems": [p.public_dict() for p in problems], "total_problems": total, "shown": len(problems)},
    )


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if (
        isinstance(content, list)
        and content
        and all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content)
    ):
        return "".join(p["text"] for p in content)
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _where(where: dict[str, int]) -> str:
    return f"line {where['line']}" if "line" in where else f"row {where['row']}"
