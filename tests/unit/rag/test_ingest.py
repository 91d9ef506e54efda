"""Ingestion safety: sizes, names, archives, symlinks; per-file errors never stop the rest."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from plinth.errors import PlinthError
from plinth.rag.ingest import bytes_source, collect_paths, expand_archives, safe_document_name
from tests.unit.rag.conftest import ACME, make_knowledge, write


@pytest.fixture
def kb(tmp_path: Path, migrated_sqlite_url: str) -> Any:
    k = make_knowledge(tmp_path / "home", migrated_sqlite_url, "embedded", kb_max_file_bytes=64 * 1024)
    k.create("docs")
    yield k
    k.store.close()


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../../b.md", "C:\\x.md", "a\x00.md", "bad\nname.md", ""])
def test_escaping_or_odd_names_are_refused(name: str) -> None:
    with pytest.raises(PlinthError):
        safe_document_name(name)


def test_names_are_normalised() -> None:
    assert safe_document_name("./a//b\\c.md") == "a/b/c.md"


def test_a_folder_with_good_bad_and_oversized_files(kb: Any, tmp_path: Path) -> None:
    root = tmp_path / "in"
    write(root / "good.md", "# Good\n\nThe copay is $15.")
    write(root / "sub" / "also.txt", "Plain text paragraph about claims.")
    (root / "broken.pdf").write_bytes(b"%PDF-1.7 garbage")
    (root / "big.md").write_bytes(b"# Big\n\n" + b"x " * 40_000)
    write(root / "notes.docx", "not supported")
    write(root / ".hidden.md", "# hidden")
    report = kb.add_paths("docs", [root])
    outcome = {f.name: f.outcome for f in report.files}
    assert outcome == {
        "big.md": "failed",
        "broken.pdf": "failed",
        "good.md": "added",
        "notes.docx": "skipped",
        "sub/also.txt": "added",
    }
    errors = {f.name: f.error for f in report.files}
    assert "over the limit" in (errors["big.md"] or "") and "PDF" in (errors["broken.pdf"] or "")
    assert report.version == 1 and [d.name for d in kb.documents("docs")[2]] == ["good.md", "sub/also.txt"]


def test_symlink_out_of_the_folder_is_refused(kb: Any, tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.md", "# Secret\n\nDo not ingest.")
    root = tmp_path / "in"
    write(root / "ok.md", "# Ok\n\nFine.")
    os.symlink(secret, root / "link.md")
    report = kb.add_paths("docs", [root])
    by = {f.name: f for f in report.files}
    assert by["link.md"].outcome == "failed" and "outside" in (by["link.md"].error or "")
    assert by["ok.md"].outcome == "added"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_archives_are_read_in_memory_with_the_same_rules(kb: Any) -> None:
    data = _zip(
        {
            "policies/a.md": b"# A\n\nArchive member A.",
            "../../evil.md": b"# Evil",
            "/abs.md": b"# Abs",
            "bomb.txt": b"0" * 200_000,  # compresses to almost nothing, expands past the limit
            "image.png": b"\x89PNG",
        }
    )
    report = kb.add_sources("docs", [bytes_source("bundle.zip", data, 1 << 20)])
    by = {f.name: f for f in report.files}
    assert by["bundle/policies/a.md"].outcome == "added"
    refused = [f for f in report.files if f.outcome == "failed"]
    assert len(refused) == 3 and all(f.error for f in refused)
    assert by["bundle/image.png"].outcome == "skipped"
    assert [d.name for d in kb.documents("docs")[2]] == ["bundle/policies/a.md"]


def test_a_zip_that_is_not_a_zip(kb: Any) -> None:
    report = kb.add_sources("docs", [bytes_source("x.zip", b"PK\x03\x04 nope", 1 << 20)])
    assert report.files[0].outcome == "failed" and "zip" in (report.files[0].error or "")
    assert not report.changed


def test_missing_path_and_duplicate_names(kb: Any, tmp_path: Path) -> None:
    f = write(tmp_path / "a.md", "# A\n\nText.")
    report = kb.add_paths("docs", [tmp_path / "nope.md", f, f])
    assert [x.outcome for x in report.files] == ["failed", "added", "failed"]


def test_the_acme_corpus_ingests_completely(kb: Any) -> None:
    sources = list(expand_archives(collect_paths([ACME / "policies"], 1 << 20), 1 << 20))
    assert len(sources) == 15 and not any(s.error for s in sources)
