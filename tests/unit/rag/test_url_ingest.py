"""Knowledge-base documents from URLs, through the outbound fetcher, against real local servers:
the parser chosen by content type (or the name when the type is generic), the size limit of
knowledge-base files, the source URL recorded, refusals before anything is stored, and a
redirect into an address the rules refuse failing that document alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plinth.errors import PlinthError
from plinth.rag.ingest import url_document_name, url_media_type
from tests.support.http_targets import Answer, redirect, serve, text
from tests.unit.rag.conftest import make_knowledge

HTML = "<html><head><title>Gold plan</title></head><body><h1>Gold plan</h1><p>The Gold deductible is $500 a year.</p></body></html>"
MARKDOWN = "# Silver plan\n\nThe Silver deductible is $1,500 a year.\n"


@pytest.fixture
def knowledge(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    svc = make_knowledge(tmp_path / "home", url, "embedded", outbound_allow=["127.0.0.1"], kb_max_file_bytes=4096)
    svc.create("policies")
    try:
        yield svc
    finally:
        svc.store.close()


def test_names_and_media_types_of_urls() -> None:
    assert url_document_name("https://docs.acme.test/policies/gold.md?x=1") == "docs.acme.test/policies/gold.md"
    assert url_document_name("http://127.0.0.1:8080/") == "127.0.0.1:8080/index"
    assert url_document_name("https://docs.acme.test:443/a%20b.txt") == "docs.acme.test/a b.txt"
    assert url_media_type("text/plain", "text/markdown") == "text/markdown"  # .md served as text/plain
    assert url_media_type("text/html", "text/markdown") == "text/html"  # the server says what it sent
    assert url_media_type("application/pdf", None) == "application/pdf"
    assert url_media_type("image/png", None) is None


def test_documents_from_urls_are_parsed_by_content_type_and_record_their_source(knowledge: Any) -> None:
    latin = "Prämie für Zahnersatz: 30 %".encode("latin-1")
    routes = {
        "/gold": text(HTML, "text/html; charset=utf-8"),
        "/silver.md": text(MARKDOWN, "text/plain"),
        "/de.txt": lambda _s: Answer(200, latin, "text/plain; charset=iso-8859-1"),
        "/old-gold": redirect("/gold"),
    }
    with serve(routes) as site:
        urls = [site.url("/gold"), site.url("/silver.md"), site.url("/de.txt")]
        report = knowledge.add_sources("policies", knowledge.sources_from_urls(urls, {"team": "claims"}))
        assert [f.outcome for f in report.files] == ["added", "added", "added"], report.as_dict()
        _kb, _v, docs = knowledge.documents("policies")
        by_name = {d.name: knowledge.document("policies", d.name) for d in docs}
        gold = by_name[f"127.0.0.1:{site.port}/gold"]
        assert gold.media_type == "text/html" and "Gold deductible is $500" in gold.text
        assert gold.metadata["source_url"] == site.url("/gold") and gold.metadata["team"] == "claims"
        assert by_name[f"127.0.0.1:{site.port}/silver.md"].media_type == "text/markdown"
        assert "Zahnersatz" in by_name[f"127.0.0.1:{site.port}/de.txt"].text
        again = knowledge.add_sources("policies", knowledge.sources_from_urls([site.url("/gold")]))
        assert [f.outcome for f in again.files] == ["unchanged"]  # same bytes: skipped by digest
        moved = knowledge.add_sources("policies", knowledge.sources_from_urls([site.url("/old-gold")]))
        assert moved.files[0].outcome == "added"
        doc = knowledge.document("policies", f"127.0.0.1:{site.port}/old-gold")
        assert doc.metadata["source_final_url"] == site.url("/gold")
        hits = knowledge.search("policies", "Gold plan deductible", k=1)
        assert hits.passages[0].document.endswith("gold")


def test_refused_urls_are_400_before_anything_is_stored(knowledge: Any) -> None:
    version = knowledge.get("policies").current_version
    for url, words in [
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata), never fetched"),
        ("http://10.0.0.1/doc.md", "private"),
        ("http://[::1]/doc.md", "loopback"),
        ("http://allowed@127.0.0.1/doc.md", "user information"),
        ("file:///etc/passwd", "scheme 'file'"),
    ]:
        with pytest.raises(PlinthError) as e:
            knowledge.sources_from_urls(["http://127.0.0.1:9/fine.md", url])
        assert e.value.http_status == 400 and words in e.value.message and e.value.param == "urls.1", url
    assert knowledge.get("policies").current_version == version


def test_fetch_failures_fail_their_document_alone(knowledge: Any) -> None:
    with serve({"*": text("internal admin page")}, host="127.0.0.2") as inner:
        routes = {
            "/ok.md": text(MARKDOWN, "text/markdown"),
            "/to-inner": redirect(inner.url("/admin")),
            "/big.txt": lambda _s: Answer(200, b"x " * 5000, "text/plain"),
            "/image": lambda _s: Answer(200, b"\x89PNG....", "image/png"),
            "/gone": text("not here", status=404),
        }
        with serve(routes) as site:
            urls = [site.url(p) for p in ("/ok.md", "/to-inner", "/big.txt", "/image", "/gone")]
            report = knowledge.add_sources("policies", knowledge.sources_from_urls(urls))
        outcome = {f.name.split("/", 1)[1]: (f.outcome, f.error or "") for f in report.files}
        assert outcome["ok.md"][0] == "added"
        assert outcome["to-inner"][0] == "failed" and "address 127.0.0.2 is loopback" in outcome["to-inner"][1]
        assert outcome["big.txt"][0] == "failed" and "limit of 4096 bytes (PLINTH_KB_MAX_FILE_BYTES)" in outcome["big.txt"][1]
        assert outcome["image"][0] == "failed" and "'image/png' is not ingested" in outcome["image"][1]
        assert outcome["gone"][0] == "failed" and "answered 404" in outcome["gone"][1] and "not here" not in outcome["gone"][1]
    assert inner.seen == []
