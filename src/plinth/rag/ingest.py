"""Where documents come from: files, folders and zip archives, checked before anything is read.

Document names are relative POSIX paths (``policies/gold-plan.md``); a name that is absolute,
climbs (``..``), or holds control characters is refused, so nothing can name its way out of
the knowledge base (documents live in the store, never as files of their own). Files over the
size limit are refused without being read; symlinks leading out of a folder are refused;
archive members are read in memory with the same name and size rules, and an archive that
claims more than it holds (or far more than the limit) is refused.
"""

from __future__ import annotations

import os
import posixpath
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from plinth.errors import ErrorCode, PlinthError
from plinth.rag.parsing import media_type_for
from plinth.userfiles import check_path_text, check_user_dir, open_user_file, read_user_file, user_stat

MAX_NAME = 500
MAX_ARCHIVE_MEMBERS = 10_000


@dataclass
class Source:
    """One document to ingest, or the error that stopped it (``error`` set, no data)."""

    name: str
    size: int
    read: Callable[[], bytes] | None = None
    media_type: str | None = None
    error: str | None = None
    skipped: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)  # merged over what the document declares


def safe_document_name(raw: str) -> str:
    name = raw.replace("\\", "/").strip()
    if not name or len(name) > MAX_NAME:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"document name {raw[:80]!r} must have 1-{MAX_NAME} characters", param="name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"document name {raw[:80]!r} contains control characters", param="name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"document name {raw[:80]!r} must be relative", param="name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"document name {raw[:80]!r} must not contain '..'", param="name")
    return posixpath.join(*parts)


def _file_source(path: Path, name: str, max_bytes: int) -> Source:
    try:
        name = safe_document_name(name)
    except PlinthError as e:
        return Source(name=name, size=0, error=e.message)
    mt = media_type_for(name)
    if name.lower().endswith(".zip"):
        mt = "application/zip"
    if mt is None:
        return Source(name=name, size=0, skipped=True, error="unsupported file type (supported: .md .txt .html .pdf .zip)")
    # Opened (not only stat'ed) here, so an unreadable file is refused before its size is told,
    # and a FIFO or device is refused without blocking; read() opens it again the same way.
    try:
        with open_user_file(path, display=name, what="document", param=None, max_bytes=max_bytes) as f:
            size = os.fstat(f.fileno()).st_size
    except PlinthError as e:
        return Source(name=name, size=0, error=e.message)

    def read() -> bytes:
        return read_user_file(path, display=name, what="document", param=None, max_bytes=max_bytes)

    return Source(name=name, size=size, read=read, media_type=mt)


def collect_paths(paths: list[Path], max_bytes: int) -> Iterator[Source]:
    """Sources for files and folders (recursively, hidden entries skipped, sorted), archives expanded.

    A path that is missing or unreadable, a folder that cannot be listed, a FIFO, a device or a
    socket becomes a source with an error; nothing is opened in a way that could block.
    """
    for given in paths:
        shown = str(given)
        try:
            path = Path(os.path.expanduser(check_path_text(given, None)))
            st = user_stat(path, display=shown, what="path", param=None)
            if stat.S_ISDIR(st.st_mode):
                check_user_dir(path, display=shown, what="folder", param=None)
        except PlinthError as e:
            yield Source(name=shown.replace("\x00", "")[:MAX_NAME], size=0, error=e.message)
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield _file_source(path, path.name, max_bytes)
            continue
        root = Path(os.path.realpath(path))
        unreadable: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable.append):
            while unreadable:
                yield _unreadable_folder(root, unreadable.pop())
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith("."):
                    continue
                p = Path(dirpath) / fn
                rel = p.relative_to(root).as_posix()
                if p.is_symlink():
                    target = Path(os.path.realpath(p))
                    if root not in target.parents:
                        yield Source(name=rel, size=0, error="symlink points outside the folder being added; refused")
                        continue
                yield _file_source(p, rel, max_bytes)
        while unreadable:
            yield _unreadable_folder(root, unreadable.pop())


def _unreadable_folder(root: Path, exc: OSError) -> Source:
    where = Path(exc.filename or root)
    rel = where.relative_to(root).as_posix() if where != root and root in where.parents else "."
    return Source(name=rel, size=0, error=f"folder {rel!r} does not exist or cannot be read by the server")


def expand_archives(sources: Iterator[Source] | list[Source], max_bytes: int) -> Iterator[Source]:
    """Zip archives replaced by their members (named ``archive/member``), others as they are."""
    for src in sources:
        yield from _maybe_archive(src, max_bytes)


def _maybe_archive(src: Source, max_bytes: int) -> Iterator[Source]:
    if src.error is not None or src.media_type != "application/zip":
        yield src
        return
    assert src.read is not None
    try:
        import io

        data = src.read()
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in zf.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, PlinthError) as e:
        yield Source(name=src.name, size=src.size, error=f"not a readable zip archive: {e}")
        return
    if len(members) > MAX_ARCHIVE_MEMBERS:
        yield Source(name=src.name, size=src.size, error=f"archive has {len(members)} files; at most {MAX_ARCHIVE_MEMBERS} are read")
        return
    prefix = src.name[: -len(".zip")] if src.name.lower().endswith(".zip") else src.name
    for m in members:
        raw = f"{prefix}/{m.filename}"
        try:
            name = safe_document_name(raw)
            if m.filename.startswith(("/", "\\")) or ".." in m.filename.replace("\\", "/").split("/"):
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"archive member {m.filename!r} escapes the archive")
        except PlinthError as e:
            yield Source(name=raw[:MAX_NAME], size=0, error=f"refused: {e.message}")
            continue
        mt = media_type_for(name)
        if mt is None:
            yield Source(name=name, size=m.file_size, skipped=True, error="unsupported file type inside the archive")
            continue
        if m.file_size > max_bytes:
            yield Source(name=name, size=m.file_size, error=f"archive member is {m.file_size} bytes, over the limit of {max_bytes}")
            continue

        def read(info: zipfile.ZipInfo = m) -> bytes:
            with zf.open(info) as f:
                out = f.read(max_bytes + 1)  # never trust the declared size (zip bombs)
            if len(out) > max_bytes:
                raise PlinthError(ErrorCode.PAYLOAD_TOO_LARGE, f"archive member expands past the limit of {max_bytes} bytes")
            return out

        yield Source(name=name, size=m.file_size, read=read, media_type=mt, metadata=dict(src.metadata))


def bytes_source(name: str, data: bytes, max_bytes: int, media_type: str | None = None, metadata: dict[str, Any] | None = None) -> Source:
    """A document given as bytes (the management API)."""
    try:
        name = safe_document_name(name)
    except PlinthError as e:
        return Source(name=name[:MAX_NAME], size=len(data), error=e.message)
    if len(data) > max_bytes:
        return Source(name=name, size=len(data), error=f"document is {len(data)} bytes, over the limit of {max_bytes}")
    mt = media_type or ("application/zip" if name.lower().endswith(".zip") else media_type_for(name))
    if mt is None:
        return Source(name=name, size=len(data), error="unsupported type: name it .md, .txt, .html or .pdf, or give media_type")
    return Source(name=name, size=len(data), read=lambda: data, media_type=mt, metadata=dict(metadata or {}))


# -- URLs ---------------------------------------------------------------------------------------
#: What a fetched document's content type says about its parser.
URL_MEDIA_TYPES = {
    "text/html": "text/html",
    "application/xhtml+xml": "text/html",
    "text/markdown": "text/markdown",
    "text/x-markdown": "text/markdown",
    "text/plain": "text/plain",
    "application/pdf": "application/pdf",
}
_GENERIC_TYPES = {None, "text/plain", "application/octet-stream", "binary/octet-stream"}
_UTF8 = {"utf-8", "utf8", "us-ascii", "ascii"}


class FetchedDocument(Protocol):
    """What the outbound fetcher hands back (:class:`plinth.outbound.Fetched`)."""

    @property
    def final_url(self) -> str: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def charset(self) -> str | None: ...
    @property
    def data(self) -> bytes: ...


def url_document_name(url: str) -> str:
    """A URL's document name: host (with a port other than the scheme's), then the path, so
    ``https://docs.acme.test/policies/gold.md`` is ``docs.acme.test/policies/gold.md``."""
    parts = urlsplit(url)
    host = (parts.hostname or "host").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port and parts.port != default:
        host = f"{host}:{parts.port}"
    path = unquote(parts.path).strip("/") or "index"
    return f"{host}/{path}"


def url_media_type(content_type: str | None, by_name: str | None) -> str | None:
    """The parser's media type: the content type when it is specific, else the name's extension."""
    if content_type in _GENERIC_TYPES and by_name is not None:
        return by_name
    return URL_MEDIA_TYPES.get(content_type or "") or by_name


def url_source(url: str, fetch: Callable[[str, int], FetchedDocument], max_bytes: int, metadata: dict[str, Any] | None = None) -> Source:
    """A document at ``url``, fetched when it is read (through the outbound fetcher ``fetch``,
    within ``max_bytes``). The parser is chosen by the answer's content type (or the name's
    extension when the type is generic); text in another charset is re-encoded as UTF-8. The
    document's metadata records ``source_url`` (and ``source_final_url`` after redirects)."""
    try:
        name = safe_document_name(url_document_name(url))
    except PlinthError as e:
        return Source(name=url[:MAX_NAME], size=0, error=e.message)
    by_name = media_type_for(name)
    src = Source(name=name, size=0, media_type=by_name or "text/html", metadata={**(metadata or {}), "source_url": url})

    def read() -> bytes:
        got = fetch(url, max_bytes)
        mt = url_media_type(got.content_type, by_name)
        if mt is None:
            raise PlinthError(
                ErrorCode.UNSUPPORTED_FORMAT,
                f"content type {got.content_type or 'none'!r} is not ingested: plinth reads HTML, Markdown, plain text and PDF",
            )
        data = got.data
        charset = (got.charset or "").lower()
        if mt != "application/pdf" and charset and charset not in _UTF8:
            try:
                data = data.decode(charset).encode("utf-8")
            except (LookupError, UnicodeDecodeError):
                raise PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"the text is not valid {charset}") from None
        src.media_type, src.size = mt, len(got.data)
        if got.final_url != url:
            src.metadata["source_final_url"] = got.final_url
        return data

    src.read = read
    return src
