"""DatasetService: add, list, show, diff and load versioned datasets.

Adding a file reads and validates every row first (all problems at once, with line
numbers), then stores three content-addressed blobs in the artifact store — the canonical
rows (one normalised JSON row per line, sorted keys), the split (indices of the validation
rows) and the source file as given — and records a new version. Adding content whose rows
and split equal the latest version's is a no-op.

The split is seeded and stable: each row without an explicit ``split`` is ranked by
sha256(seed, row content) and the first ``round(validation_fraction x rows)`` go to
validation, so a row keeps its side when other rows are added or removed (no leakage
between versions), and the same file with the same seed always splits the same way.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from plinth.config import Settings
from plinth.domain.datasets import (
    DATASET_NAME_RE,
    Dataset,
    DatasetDiff,
    DatasetRef,
    DatasetVersion,
    SourceFormat,
)
from plinth.domain.numbers import VERSION_MAX, whole_number
from plinth.errors import ErrorCode, PlinthError
from plinth.outbound import Outbound
from plinth.store import ArtifactStore, MetadataStore
from plinth.tempfiles import owned_temp, owned_temp_dir
from plinth.tuning.dataset_formats import detect_format, parse_file
from plinth.tuning.dataset_stats import TokenCounter, compute_stats, row_key, token_counter
from plinth.userfiles import open_user_file

Split = Literal["train", "validation", "all"]
SPLIT_KIND = "plinth.split/v1"
MAX_SEED = 2**31 - 1
MAX_SOURCE_NAME = 512

#: The dataset format a content type names (uploads and URLs).
FORMAT_BY_CONTENT_TYPE = {
    "application/x-ndjson": SourceFormat.JSONL,
    "application/jsonl": SourceFormat.JSONL,
    "application/json-lines": SourceFormat.JSONL,
    "text/csv": SourceFormat.CSV,
    "application/vnd.apache.parquet": SourceFormat.PARQUET,
    "application/x-parquet": SourceFormat.PARQUET,
}


def parse_ref(text: str, *, param: str = "dataset") -> DatasetRef:
    """``name``, ``name@latest`` or ``name@3`` -> DatasetRef; PlinthError(invalid_request) otherwise."""
    name, sep, version = (text or "").partition("@")
    if not DATASET_NAME_RE.match(name):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid dataset {text!r}: use NAME or NAME@VERSION; names are 1-128 letters, digits, '.', '_' or '-'",
            param=param,
        )
    if not sep or version == "latest":
        return DatasetRef(name)
    number = whole_number(version, minimum=1, maximum=VERSION_MAX)
    if number is None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid dataset version in {text!r}: expected NAME@1, NAME@2, ... (at most {VERSION_MAX})",
            param=param,
        )
    return DatasetRef(name, number)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not DATASET_NAME_RE.match(name):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid dataset name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def assign_validation(rows: list[dict[str, Any]], fraction: float, seed: int) -> list[int]:
    """Indices of the validation rows (sorted): explicit ``split`` first, then the seeded ranking."""
    explicit = [i for i, r in enumerate(rows) if r.get("split") == "validation"]
    free = [i for i, r in enumerate(rows) if "split" not in r]
    k = round(len(free) * fraction)
    k = max(1, min(k, len(free) - 1)) if fraction > 0 and len(free) >= 2 else 0
    ranked = sorted(free, key=lambda i: (hashlib.sha256(f"{seed}\n{row_key(rows[i])}".encode()).hexdigest(), i))
    return sorted(explicit + ranked[:k])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class DatasetService:
    def __init__(
        self, settings: Settings, store: MetadataStore, artifacts: ArtifactStore, catalog: Any, *, outbound: Outbound | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.artifacts = artifacts
        self.catalog = catalog
        self.outbound = outbound or Outbound.from_settings(settings)
        self._counters: dict[str, TokenCounter] = {}
        self._lock = threading.Lock()

    # -- adding --------------------------------------------------------------------------
    def add(
        self,
        path: Path,
        name: str,
        *,
        source_format: SourceFormat | str | None = None,
        validation_fraction: float = 0.1,
        seed: int = 0,
        note: str | None = None,
        description: str | None = None,
        model: str | None = None,
        source_name: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Validate ``path`` and add it as the next version of dataset ``name``; returns the
        version and whether it is new (False: the latest version already had these rows and split)."""
        check_name(name)
        _check_split_params(validation_fraction, seed)
        if note is not None and len(note) > 2000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "note must be at most 2000 characters", param="note")
        if isinstance(source_format, str):
            try:
                source_format = SourceFormat(source_format.lower())
            except ValueError:
                raise PlinthError(
                    ErrorCode.UNSUPPORTED_FORMAT,
                    f"unknown dataset format {source_format!r}; use jsonl, csv or parquet",
                    param="format",
                ) from None
        path = Path(path).expanduser()
        # Opened once, as a regular file, without blocking, read within a size limit and a
        # deadline (plinth.userfiles); every pass below reads this same open file.
        with open_user_file(
            path, what="dataset file", max_bytes=self.settings.dataset_max_bytes, limit_setting="PLINTH_DATASET_MAX_BYTES"
        ) as f:
            if source_format is None:
                source_format = detect_format(path, f.read(64))
                f.seek(0)
            counter, counter_error = self._counter(model)  # an unknown --model is refused before anything is stored
            parsed = parse_file(path, source_format, progress, fh=f)
            validation = assign_validation(parsed.rows, validation_fraction, seed)
            stats = compute_stats(
                parsed.rows, parsed.format, set(validation), counter, counter_error=counter_error, ignored_fields=parsed.ignored_fields
            )
            rows_blob = "".join(_canonical(r) + "\n" for r in parsed.rows).encode("utf-8")
            split_blob = _canonical({"kind": SPLIT_KIND, "validation": validation}).encode("utf-8")
            # what the project's storage quota counts for this version: its rows as stored
            stats = {**stats, "bytes": len(rows_blob)}
            self.store.check_storage_quota(len(rows_blob))
            f.seek(0)
            source_digest = self.artifacts.put_stream(f)
        version = DatasetVersion(
            dataset=name,
            version=0,
            format=parsed.format,
            digest=self.artifacts.put_bytes(rows_blob),
            split_digest=self.artifacts.put_bytes(split_blob),
            rows=len(parsed.rows),
            train_rows=len(parsed.rows) - len(validation),
            validation_rows=len(validation),
            source_format=source_format,
            split={"validation_fraction": validation_fraction, "seed": seed, "method": "sha256-rank"},
            stats=stats,
            source_digest=source_digest,
            source_name=(source_name or path.name)[:512],
            note=note,
        )
        return self.store.add_dataset_version(version, description=description)

    def add_bytes(self, data: bytes, name: str, *, filename: str = "upload", **options: Any) -> tuple[DatasetVersion, bool]:
        """:meth:`add` for bytes received over the API (written to a private temp file first)."""
        base = os.path.basename(filename or "upload").replace("\x00", "") or "upload"
        # Locked while in use (plinth.tempfiles): a killed server's leftover is swept at start-up.
        with owned_temp(self.settings.artifacts_dir / "tmp", prefix="dataset-", suffix=Path(base).suffix[:16]) as tmp:
            tmp.file.write(data)
            tmp.file.flush()
            return self.add(tmp.path, name, source_name=base, **options)

    def add_url(
        self, url: str, name: str, *, source_format: SourceFormat | str | None = None, **options: Any
    ) -> tuple[DatasetVersion, bool]:
        """:meth:`add` for a file at ``url``, fetched through the outbound fetcher (ADR 0080:
        the outbound rules, redirects re-checked, within ``dataset_max_bytes`` and
        ``outbound_timeout_s``). The format comes from ``source_format``, else the answer's
        content type, else the URL's extension or the content; the URL is the version's
        ``source_name`` (lineage)."""
        check_name(name)
        if len(url or "") > MAX_SOURCE_NAME:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"a dataset URL must be at most {MAX_SOURCE_NAME} characters: it is recorded as the version's source",
                param="url",
            )
        got = self.outbound.fetch(
            url, max_bytes=self.settings.dataset_max_bytes, what="dataset URL", param="url", limit_setting="PLINTH_DATASET_MAX_BYTES"
        )
        if source_format is None:
            source_format = FORMAT_BY_CONTENT_TYPE.get(got.content_type or "")
        # Staged under the URL's own file name, so problems name the file the caller knows.
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(urlsplit(got.final_url).path).name)[-100:].lstrip(".-") or "download"
        with owned_temp_dir(self.settings.artifacts_dir / "tmp", prefix="dataset-url-") as staging:
            path = staging / base
            path.write_bytes(got.data)
            return self.add(path, name, source_format=source_format, source_name=url, **options)

    def _counter(self, model: str | None) -> tuple[TokenCounter | None, str | None]:
        explicit = model is not None
        name = model or self.settings.default_model
        with self._lock:
            if name in self._counters:
                return self._counters[name], None
            try:
                record = self.catalog.get(name)
                counter = token_counter(record, self.catalog.model_path(record))
            except PlinthError as e:
                if explicit:
                    raise PlinthError(e.code, f"cannot count tokens with model {name!r}: {e.message}", param="model") from None
                return None, e.message
            self._counters[name] = counter
            return counter, None

    # -- reading -------------------------------------------------------------------------
    def list(self) -> builtins.list[tuple[Dataset, DatasetVersion]]:
        out = []
        for ds in self.store.list_datasets():
            out.append((ds, self.store.get_dataset_version(ds.name, ds.latest_version)))
        return out

    def get(self, ref: str | DatasetRef) -> DatasetVersion:
        r = parse_ref(ref) if isinstance(ref, str) else ref
        return self.store.get_dataset_version(r.name, r.version)

    resolve = get

    def dataset(self, name: str) -> Dataset:
        return self.store.get_dataset(check_name(name))

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        return self.store.list_dataset_versions(check_name(name))

    def load_rows(self, ref: str | DatasetRef | DatasetVersion, split: Split = "train") -> builtins.list[dict[str, Any]]:
        """The version's canonical rows of one split (``train``, ``validation`` or ``all``), in
        file order; with ``all`` each row carries its ``split``."""
        if split not in ("train", "validation", "all"):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"split must be train, validation or all; got {split!r}", param="split")
        v = ref if isinstance(ref, DatasetVersion) else self.get(ref)
        rows = [json.loads(line) for line in self.artifacts.read_bytes(v.digest).decode("utf-8").splitlines() if line]
        split_doc = json.loads(self.artifacts.read_bytes(v.split_digest))
        if split_doc.get("kind") != SPLIT_KIND:
            raise PlinthError(ErrorCode.INTEGRITY_ERROR, f"dataset {v.ref}: its split blob is not a {SPLIT_KIND} document")
        validation = set(split_doc["validation"])
        out = []
        for i, row in enumerate(rows):
            side = "validation" if i in validation else "train"
            if split == "all":
                out.append({**row, "split": side})
            elif side == split:
                out.append(row)
        return out

    def load_messages(self, ref: str | DatasetRef | DatasetVersion, split: Split = "train") -> builtins.list[builtins.list[dict[str, Any]]]:
        """The rows of a split as chat ``messages`` lists: what a training recipe consumes.
        Prompt/completion rows become ``[{"role": "user", ...}, {"role": "assistant", ...}]``;
        assistant messages keep their ``weight`` when they have one."""
        out = []
        for row in self.load_rows(ref, split):
            if "messages" in row:
                out.append(row["messages"])
            else:
                out.append([{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}])
        return out

    def rows(self, ref: str, *, split: Split = "all", offset: int = 0, limit: int = 20) -> tuple[builtins.list[dict[str, Any]], int]:
        """A page of rows and the total in that split."""
        if offset < 0 or not 1 <= limit <= 1000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "offset must be >= 0 and limit from 1 to 1000", param="limit")
        rows = self.load_rows(ref, split)
        return rows[offset : offset + limit], len(rows)

    def diff(self, before: str, after: str, *, samples: int = 5) -> DatasetDiff:
        va, vb = self.get(before), self.get(after)
        ra, rb = self.load_rows(va, "all"), self.load_rows(vb, "all")
        ka, kb = Counter(row_key(r) for r in ra), Counter(row_key(r) for r in rb)
        removed_left, added_left = ka - kb, kb - ka
        removed, added = [], []
        for r in ra:
            k = row_key(r)
            if removed_left[k] > 0:
                removed_left[k] -= 1
                removed.append(r)
        for r in rb:
            k = row_key(r)
            if added_left[k] > 0:
                added_left[k] -= 1
                added.append(r)
        by_prompt: dict[str, builtins.list[dict[str, Any]]] = {}
        for r in removed:
            by_prompt.setdefault(_prompt_key(r), []).append(r)
        changed = []
        only_added = []
        for r in added:
            pool = by_prompt.get(_prompt_key(r))
            if pool:
                changed.append({"before": _strip(pool.pop(0)), "after": _strip(r)})
            else:
                only_added.append(r)
        only_removed = [r for pool in by_prompt.values() for r in pool]
        side_a = {row_key(r): r["split"] for r in ra}
        moved = sum(1 for r in rb if row_key(r) in side_a and side_a[row_key(r)] != r["split"])
        return DatasetDiff(
            before=va.ref,
            after=vb.ref,
            added=len(only_added),
            removed=len(only_removed),
            changed=len(changed),
            unchanged=sum((ka & kb).values()),
            moved_split=moved,
            samples={
                "added": [_strip(r) for r in only_added[:samples]],
                "removed": [_strip(r) for r in only_removed[:samples]],
                "changed": changed[:samples],
            },
        )

    # -- removing ------------------------------------------------------------------------
    def delete(self, name: str) -> builtins.list[DatasetVersion]:
        """Remove a dataset with all its versions, and the blobs no other version uses."""
        versions = self.store.delete_dataset(check_name(name))
        for digest in {d for v in versions for d in (v.digest, v.split_digest, v.source_digest) if d}:
            if self.store.count_dataset_blob_users(digest) == 0:
                self.artifacts.delete(digest)
        return versions


def _check_split_params(fraction: float, seed: int) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 0.5:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"validation_fraction must be from 0 to 0.5; got {fraction!r}", param="validation_fraction"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"seed must be an integer from 0 to {MAX_SEED}; got {seed!r}", param="seed")


def _prompt_key(row: dict[str, Any]) -> str:
    if "messages" in row:
        return _canonical(row["messages"][:-1])
    return _canonical(row["prompt"])


def _strip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "split"}
