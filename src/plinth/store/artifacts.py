"""The content-addressed artifact store: model files and directories as sha256 blobs.

Layout under ``root``::

    sha256/<first 2 hex>/<64 hex>   a blob, read-only, named by the sha256 of its bytes
    tmp/                            blobs being written (same filesystem, so the final
                                    os.replace is atomic)

A directory (a Hugging Face safetensors model) is stored as one blob per regular file plus
a *tree manifest* blob, ``{"kind": "plinth.tree/v1", "files": {relpath: {"digest", "size"}}}``
serialised deterministically; the manifest's digest names the directory.
:meth:`ArtifactStore.materialize_tree` turns it back into a directory of hard links.

Digests are always ``sha256:<64 lowercase hex>``, checked against :data:`DIGEST_RE` before
any path is built from them.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from plinth.errors import ErrorCode, PlinthError
from plinth.tempfiles import owned_temp, owned_temp_dir, sweep
from plinth.userfiles import check_user_dir, mapped_os_errors, open_user_file, user_stat

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TREE_KIND = "plinth.tree/v1"
CHUNK_SIZE = 1024 * 1024
_BLOB_MODE = 0o444

Progress = Callable[[int], None]


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest, else PlinthError(INVALID_REQUEST)."""
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid digest {digest!r}: expected 'sha256:' followed by 64 lowercase hex digits",
            param="digest",
        )
    return digest


def _check_relpath(relpath: str) -> str:
    """A manifest path: relative, '/'-separated, no empty, '.' or '..' components."""
    parts = relpath.split("/")
    if not relpath or relpath.startswith("/") or "\\" in relpath or "\x00" in relpath or any(p in ("", ".", "..") for p in parts):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid path {relpath!r} in a tree: must be relative, without '..'")
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid path {relpath!r} in a tree: not valid UTF-8") from None
    return relpath


class ArtifactStore:
    """Content-addressed blobs under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------
    @property
    def _tmp(self) -> Path:
        return self.root / "tmp"

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists; nothing is verified)."""
        hexdigest = check_digest(digest)[len("sha256:") :]
        return self.root / "sha256" / hexdigest[:2] / hexdigest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise _missing(digest) from None

    # -- writing -----------------------------------------------------------------------------
    def put_file(self, path: Path, progress: Progress | None = None) -> str:
        """Store a file's bytes; returns ``sha256:<hex>``. ``progress(n)`` after each chunk."""
        # A regular file only, opened without blocking, read within a deadline (plinth.userfiles).
        with open_user_file(Path(path)) as f:
            return self.put_stream(f, progress)

    def put_bytes(self, data: bytes) -> str:
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO, progress: Progress | None = None) -> str:
        """Store everything read from ``stream``.

        The bytes go to a temp file under ``root/tmp`` while they are hashed, are fsynced,
        and are renamed into place atomically; a failure part way leaves no blob behind. The
        temp file is locked by this writer until it is renamed or removed, so a writer killed
        mid-copy leaves a file the next :meth:`sweep_tmp` removes (:mod:`plinth.tempfiles`).
        """
        with owned_temp(self._tmp, prefix="put-") as tmp:
            hasher = hashlib.sha256()
            size = 0
            out = tmp.file
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
            digest = "sha256:" + hasher.hexdigest()
            dest = self.path(digest)
            try:
                existing = dest.stat().st_size
            except FileNotFoundError:
                existing = None
            if existing == size:
                return digest  # already stored (a damaged blob of the same size is not repaired here)
            os.chmod(tmp.path, _BLOB_MODE)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp.path, dest)  # still locked: the lock goes when the block ends
            _fsync_dir(dest.parent)
            return digest

    def put_tree(self, directory: Path, progress: Progress | None = None, *, follow_external_symlinks: bool = False) -> str:
        """Store every regular file under ``directory`` and a manifest; returns the manifest's digest.

        Symlinks are followed when they point inside ``directory``; one pointing outside it
        is refused unless ``follow_external_symlinks`` (e.g. for a trusted Hugging Face cache
        snapshot, whose files link to ``../../blobs``). Symlinked directories, sockets and
        other special files are refused. The whole tree is checked before anything is stored.
        The digest depends only on the paths and bytes (not on mtimes or walk order).
        """
        directory = Path(directory)
        if not stat.S_ISDIR(user_stat(directory, what="directory").st_mode):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{str(directory)!r} is not a directory")
        check_user_dir(directory)
        files = self._scan_tree(directory, follow_external_symlinks)
        entries: dict[str, dict[str, Any]] = {}
        for relpath, source in files:
            digest = self.put_file(source, progress)
            entries[relpath] = {"digest": digest, "size": self.size(digest)}
        return self.put_bytes(tree_manifest_bytes(entries))

    @staticmethod
    def _scan_tree(directory: Path, follow_external_symlinks: bool) -> list[tuple[str, Path]]:
        root_real = Path(os.path.realpath(directory))
        found: list[tuple[str, Path]] = []

        def unreadable(exc: OSError) -> None:  # a folder that cannot be listed fails the import, never skipped
            with mapped_os_errors(str(exc.filename or directory), "folder"):
                raise exc

        for dirpath, dirnames, filenames in os.walk(directory, followlinks=False, onerror=unreadable):
            for name in dirnames:
                if os.path.islink(os.path.join(dirpath, name)):
                    rel = os.path.relpath(os.path.join(dirpath, name), directory)
                    raise PlinthError(ErrorCode.INVALID_REQUEST, f"symlinked directory {rel!r} in {str(directory)!r} is not supported")
            for name in filenames:
                full = os.path.join(dirpath, name)
                relpath = _check_relpath(Path(os.path.relpath(full, directory)).as_posix())
                if os.path.islink(full):
                    target = Path(os.path.realpath(full))
                    if not follow_external_symlinks and not target.is_relative_to(root_real):
                        raise PlinthError(
                            ErrorCode.INVALID_REQUEST,
                            f"symlink {relpath!r} in {str(directory)!r} points outside the directory",
                        )
                else:
                    target = Path(full)
                try:
                    mode = target.stat().st_mode
                except OSError:
                    if os.path.islink(full):
                        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{relpath!r} in {str(directory)!r} is a broken symlink") from None
                    with mapped_os_errors(full):
                        raise
                if not stat.S_ISREG(mode):
                    raise PlinthError(ErrorCode.INVALID_REQUEST, f"{relpath!r} in {str(directory)!r} is not a regular file")
                found.append((relpath, target))
        found.sort()
        return found

    # -- reading -----------------------------------------------------------------------------
    def open_verified(self, digest: str) -> Path:
        """The blob's path after re-hashing it; PlinthError(INTEGRITY_ERROR) if the bytes changed."""
        path = self.path(digest)
        try:
            with open(path, "rb") as f:
                actual = _hash_stream(f)
        except FileNotFoundError:
            raise _missing(digest) from None
        _check_hash(digest, actual, path)
        return path

    def read_bytes(self, digest: str, verify: bool = True) -> bytes:
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _missing(digest) from None
        if verify:
            _check_hash(digest, "sha256:" + hashlib.sha256(data).hexdigest(), path)
        return data

    def verify(self, digest: str) -> bool:
        """True if the blob exists and its bytes still hash to ``digest``."""
        try:
            self.open_verified(digest)
        except PlinthError as e:
            if e.code in (ErrorCode.INTEGRITY_ERROR, ErrorCode.NOT_FOUND):
                return False
            raise
        return True

    def read_tree(self, manifest_digest: str) -> dict[str, dict[str, Any]]:
        """The ``files`` of a tree manifest (relpath -> {"digest", "size"}), checked."""
        raw = self.read_bytes(manifest_digest)
        try:
            manifest = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("kind") != TREE_KIND or not isinstance(manifest.get("files"), dict):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"artifact {manifest_digest} is not a {TREE_KIND} manifest")
        files: dict[str, dict[str, Any]] = manifest["files"]
        for relpath, entry in files.items():
            _check_relpath(relpath)
            if not isinstance(entry, dict) or not isinstance(entry.get("size"), int):
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"tree {manifest_digest}: bad entry for {relpath!r}")
            check_digest(entry.get("digest"))  # type: ignore[arg-type]
        return files

    def materialize_tree(self, manifest_digest: str, dest: Path) -> Path:
        """A directory at ``dest`` holding the tree's files, hard-linked to the blobs where possible.

        Every file is verified against its digest. The directory is assembled next to
        ``dest`` and renamed into place, so ``dest`` is either absent or complete. If
        ``dest`` already holds the tree it is returned as is; if it holds something else,
        PlinthError(CONFLICT).
        """
        dest = Path(dest)
        files = self.read_tree(manifest_digest)
        if dest.exists():
            if _tree_present(dest, files):
                return dest
            raise PlinthError(ErrorCode.CONFLICT, f"{str(dest)!r} exists and does not hold tree {manifest_digest}")
        # A locked staging folder: one a killed process left is removed by the next start's sweep.
        with owned_temp_dir(dest.parent, prefix=f".{dest.name}.tmp-") as staging:
            os.chmod(staging, 0o755)
            for relpath, entry in sorted(files.items()):
                self._place(entry["digest"], staging / relpath)
            _fsync_dir(staging)
            try:
                os.rename(staging, dest)
            except OSError as e:
                # Someone else materialised it first.
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and _tree_present(dest, files):
                    return dest
                raise
            _fsync_dir(dest.parent)
            return dest

    def _place(self, digest: str, target: Path) -> None:
        """Put the blob at ``target`` (hard link, else copy), verifying its bytes."""
        blob = self.path(digest)
        if not blob.is_file():
            raise _missing(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob, target)
        except OSError:
            with open(blob, "rb") as src, open(target, "wb") as out:
                hasher = hashlib.sha256()
                while chunk := src.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            _check_hash(digest, "sha256:" + hasher.hexdigest(), blob)
            os.chmod(target, _BLOB_MODE)
            return
        with open(target, "rb") as f:
            _check_hash(digest, _hash_stream(f), blob)

    # -- removal -----------------------------------------------------------------------------
    def sweep_tmp(self) -> int:
        """Remove the temp files under ``tmp/`` that no live writer holds (writers killed
        mid-copy, SIGKILL included); a write in progress in any process is left alone."""
        return sweep(self._tmp)

    def delete(self, digest: str) -> bool:
        """Remove the blob; False if it was not there. (A tree's files are separate blobs.)"""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True


# -- helpers ---------------------------------------------------------------------------------
def tree_manifest_bytes(files: dict[str, dict[str, Any]]) -> bytes:
    """The canonical serialisation of a tree manifest (sorted keys, no whitespace)."""
    manifest = {"kind": TREE_KIND, "files": {k: {"digest": v["digest"], "size": v["size"]} for k, v in files.items()}}
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _hash_stream(f: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while chunk := f.read(CHUNK_SIZE):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _check_hash(expected: str, actual: str, path: Path) -> None:
    if actual != expected:
        raise PlinthError(
            ErrorCode.INTEGRITY_ERROR,
            f"artifact {expected} is corrupted: its bytes hash to {actual} ({str(path)!r})",
            details={"expected": expected, "actual": actual, "path": str(path)},
        )


def _missing(digest: str) -> PlinthError:
    return PlinthError(ErrorCode.NOT_FOUND, f"artifact {digest!r} does not exist", details={"kind": "artifact", "name": digest})


def _tree_present(dest: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Cheap completeness check of a materialised tree: every file there with its size."""
    if not dest.is_dir():
        return False
    for relpath, entry in files.items():
        try:
            st = (dest / relpath).stat()
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
            return False
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
