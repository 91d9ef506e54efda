"""The content-addressed artifact store."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.store.artifacts import CHUNK_SIZE, TREE_KIND, ArtifactStore


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _corrupt(path: Path, data: bytes = b"tampered") -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


def _tmp_entries(store: ArtifactStore) -> list[Path]:
    tmp = store.root / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


def _make_tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "llama"}')
    (root / "model.safetensors").write_bytes(os.urandom(3 * CHUNK_SIZE // 2))
    (root / "sub" / "tokenizer.json").write_text("{}")
    (root / "sub" / "deeper" / "empty.txt").write_bytes(b"")
    return root


# -- blobs ---------------------------------------------------------------------------------
def test_put_bytes_round_trip(artifact_store: ArtifactStore) -> None:
    data = b"hello plinth"
    digest = artifact_store.put_bytes(data)
    assert digest == _sha(data)
    hexd = digest.removeprefix("sha256:")
    assert artifact_store.path(digest) == artifact_store.root / "sha256" / hexd[:2] / hexd
    assert artifact_store.exists(digest)
    assert artifact_store.size(digest) == len(data)
    assert artifact_store.read_bytes(digest) == data
    assert artifact_store.open_verified(digest).read_bytes() == data
    assert artifact_store.verify(digest)


def test_put_file_streams_with_progress(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 17)
    src = tmp_path / "model.gguf"
    src.write_bytes(data)
    seen: list[int] = []
    digest = artifact_store.put_file(src, progress=seen.append)
    assert digest == _sha(data)
    assert sum(seen) == len(data) and len(seen) == 3
    assert artifact_store.read_bytes(digest) == data
    assert _tmp_entries(artifact_store) == []


def test_put_is_deduplicated(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"same bytes")
    d1 = artifact_store.put_file(src)
    inode = artifact_store.path(d1).stat().st_ino
    d2 = artifact_store.put_bytes(b"same bytes")
    assert d1 == d2
    assert artifact_store.path(d2).stat().st_ino == inode  # not rewritten
    assert _tmp_entries(artifact_store) == []


def test_blob_is_read_only(artifact_store: ArtifactStore) -> None:
    digest = artifact_store.put_bytes(b"x")
    assert artifact_store.path(digest).stat().st_mode & 0o222 == 0


class _FailingReader(io.RawIOBase):
    """Gives ``good`` bytes, then fails like a disk or network error would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("simulated read failure")
        take = min(self.left, n if n and n > 0 else self.left)
        self.left -= take
        return b"\x01" * take


def test_failed_read_leaves_no_blob(artifact_store: ArtifactStore) -> None:
    with pytest.raises(OSError, match="simulated"):
        artifact_store.put_stream(_FailingReader(good=CHUNK_SIZE + 10))  # type: ignore[arg-type]
    assert _tmp_entries(artifact_store) == []
    blobs = artifact_store.root / "sha256"
    assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))


def test_failed_progress_callback_leaves_no_blob(artifact_store: ArtifactStore) -> None:
    def cancel(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        artifact_store.put_stream(io.BytesIO(b"z" * 10), progress=cancel)
    assert _tmp_entries(artifact_store) == []
    assert not artifact_store.exists(_sha(b"z" * 10))


def test_corrupted_blob_detected(artifact_store: ArtifactStore) -> None:
    digest = artifact_store.put_bytes(b"original content")
    _corrupt(artifact_store.path(digest))
    assert not artifact_store.verify(digest)
    with pytest.raises(PlinthError) as ei:
        artifact_store.open_verified(digest)
    assert ei.value.code is ErrorCode.INTEGRITY_ERROR
    assert digest in ei.value.message
    with pytest.raises(PlinthError) as ei:
        artifact_store.read_bytes(digest)
    assert ei.value.code is ErrorCode.INTEGRITY_ERROR
    assert artifact_store.read_bytes(digest, verify=False) == b"tampered"


def test_damaged_blob_of_other_size_is_replaced_on_put(artifact_store: ArtifactStore) -> None:
    digest = artifact_store.put_bytes(b"original content")
    _corrupt(artifact_store.path(digest), b"short")
    assert artifact_store.put_bytes(b"original content") == digest
    assert artifact_store.verify(digest)


def test_missing_blob_not_found(artifact_store: ArtifactStore) -> None:
    digest = _sha(b"never stored")
    assert not artifact_store.exists(digest)
    assert not artifact_store.verify(digest)
    for call in (artifact_store.open_verified, artifact_store.read_bytes, artifact_store.size):
        with pytest.raises(PlinthError) as ei:
            call(digest)
        assert ei.value.code is ErrorCode.NOT_FOUND
        assert digest in ei.value.message


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:../../etc",
        "sha256:../../../../etc/passwd",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 62 + "/x",
        "sha256:" + "a" * 64 + "\n",
        "md5:" + "a" * 32,
        "a" * 64,
        "",
    ],
)
def test_bad_digests_rejected(artifact_store: ArtifactStore, bad: str) -> None:
    for call in (
        artifact_store.path,
        artifact_store.exists,
        artifact_store.size,
        artifact_store.open_verified,
        artifact_store.read_bytes,
        artifact_store.verify,
        artifact_store.delete,
    ):
        with pytest.raises(PlinthError) as ei:
            call(bad)
        assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert not artifact_store.root.exists()  # nothing was touched


def test_delete(artifact_store: ArtifactStore) -> None:
    digest = artifact_store.put_bytes(b"bye")
    assert artifact_store.delete(digest) is True
    assert not artifact_store.exists(digest)
    assert artifact_store.delete(digest) is False


# -- trees ---------------------------------------------------------------------------------
def test_put_tree_manifest(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    tree = _make_tree(tmp_path / "model")
    seen: list[int] = []
    digest = artifact_store.put_tree(tree, progress=seen.append)
    manifest = json.loads(artifact_store.read_bytes(digest))
    assert manifest["kind"] == TREE_KIND
    assert sorted(manifest["files"]) == [
        "config.json",
        "model.safetensors",
        "sub/deeper/empty.txt",
        "sub/tokenizer.json",
    ]
    for rel, entry in manifest["files"].items():
        data = (tree / rel).read_bytes()
        assert entry == {"digest": _sha(data), "size": len(data)}
        assert artifact_store.read_bytes(entry["digest"]) == data
    assert sum(seen) == sum(e["size"] for e in manifest["files"].values())
    assert artifact_store.read_tree(digest) == manifest["files"]


def test_put_tree_deterministic(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    a = _make_tree(tmp_path / "a")
    b = tmp_path / "b"
    # the same content, created in another order with other mtimes
    for rel in sorted((p.relative_to(a) for p in a.rglob("*") if p.is_file()), reverse=True):
        (b / rel).parent.mkdir(parents=True, exist_ok=True)
        (b / rel).write_bytes((a / rel).read_bytes())
        os.utime(b / rel, (1_000_000, 1_000_000))
    assert artifact_store.put_tree(a) == artifact_store.put_tree(b)
    (b / "config.json").write_text('{"model_type": "mistral"}')
    assert artifact_store.put_tree(a) != artifact_store.put_tree(b)


def test_put_tree_follows_internal_symlinks(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    tree = _make_tree(tmp_path / "model")
    (tree / "alias.json").symlink_to("config.json")
    files = artifact_store.read_tree(artifact_store.put_tree(tree))
    assert files["alias.json"] == files["config.json"]


def test_put_tree_rejects_escaping_symlink(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not store me")
    tree = _make_tree(tmp_path / "model")
    (tree / "sub" / "leak.txt").symlink_to(secret)
    with pytest.raises(PlinthError) as ei:
        artifact_store.put_tree(tree)
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert "sub/leak.txt" in ei.value.message
    assert not artifact_store.exists(_sha(b"do not store me"))
    assert not artifact_store.exists(_sha((tree / "config.json").read_bytes()))  # checked before storing
    # ... unless the caller trusts the tree
    files = artifact_store.read_tree(artifact_store.put_tree(tree, follow_external_symlinks=True))
    assert files["sub/leak.txt"]["digest"] == _sha(b"do not store me")


def test_put_tree_rejects_relative_escape_and_dir_symlink(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "outside.bin").write_bytes(b"x")
    tree = _make_tree(tmp_path / "model")
    (tree / "up.bin").symlink_to(Path("..") / "outside.bin")
    with pytest.raises(PlinthError) as ei:
        artifact_store.put_tree(tree)
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    (tree / "up.bin").unlink()
    (tree / "linked-dir").symlink_to(tmp_path)
    with pytest.raises(PlinthError) as ei:
        artifact_store.put_tree(tree)
    assert ei.value.code is ErrorCode.INVALID_REQUEST


def test_put_tree_not_a_directory(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(PlinthError) as ei:
        artifact_store.put_tree(tmp_path / "missing")
    assert ei.value.code is ErrorCode.NOT_FOUND  # missing looks like unreadable: 404
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(PlinthError) as ei:
        artifact_store.put_tree(tmp_path / "file")
    assert ei.value.code is ErrorCode.INVALID_REQUEST


def test_materialize_tree(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    tree = _make_tree(tmp_path / "model")
    digest = artifact_store.put_tree(tree)
    dest = tmp_path / "models" / "tiny"
    assert artifact_store.materialize_tree(digest, dest) == dest
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == ["config.json", "model.safetensors", "sub/deeper/empty.txt", "sub/tokenizer.json"]
    for rel in got:
        assert (dest / rel).read_bytes() == (tree / rel).read_bytes()
    # hard links into the store (same filesystem here)
    blob = artifact_store.path(_sha((tree / "config.json").read_bytes()))
    assert (dest / "config.json").stat().st_ino == blob.stat().st_ino
    # no staging directories left next to it
    assert [p.name for p in dest.parent.iterdir()] == ["tiny"]
    # already there: returned as is
    assert artifact_store.materialize_tree(digest, dest) == dest


def test_materialize_tree_detects_corruption(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    tree = _make_tree(tmp_path / "model")
    digest = artifact_store.put_tree(tree)
    _corrupt(artifact_store.path(_sha((tree / "sub" / "tokenizer.json").read_bytes())), b"{!}")
    dest = tmp_path / "models" / "tiny"
    with pytest.raises(PlinthError) as ei:
        artifact_store.materialize_tree(digest, dest)
    assert ei.value.code is ErrorCode.INTEGRITY_ERROR
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_materialize_tree_conflicting_dest(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    digest = artifact_store.put_tree(_make_tree(tmp_path / "model"))
    dest = tmp_path / "occupied"
    dest.mkdir()
    (dest / "other.txt").write_text("mine")
    with pytest.raises(PlinthError) as ei:
        artifact_store.materialize_tree(digest, dest)
    assert ei.value.code is ErrorCode.CONFLICT
    assert (dest / "other.txt").read_text() == "mine"


@pytest.mark.parametrize("evil", ["../escape.txt", "/etc/passwd", "a/../../b", "./x", "a//b"])
def test_materialize_rejects_crafted_manifest(artifact_store: ArtifactStore, tmp_path: Path, evil: str) -> None:
    blob = artifact_store.put_bytes(b"payload")
    manifest = {"kind": TREE_KIND, "files": {evil: {"digest": blob, "size": 7}}}
    digest = artifact_store.put_bytes(json.dumps(manifest).encode())
    dest = tmp_path / "out" / "tree"
    with pytest.raises(PlinthError) as ei:
        artifact_store.materialize_tree(digest, dest)
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert not (tmp_path / "out" / "escape.txt").exists()
    assert not dest.exists()


def test_materialize_rejects_non_manifest(artifact_store: ArtifactStore, tmp_path: Path) -> None:
    digest = artifact_store.put_bytes(b"just a blob")
    with pytest.raises(PlinthError) as ei:
        artifact_store.materialize_tree(digest, tmp_path / "x")
    assert ei.value.code is ErrorCode.INVALID_REQUEST
