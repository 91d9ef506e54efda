"""The same index suite on every backend: embedded over SQLite, embedded over Postgres
without pgvector, and pgvector + Postgres full-text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.rag.ingest import bytes_source
from tests.unit.rag.conftest import make_knowledge

GOLD = """# Gold plan

## Deductible

The Gold plan's in-network deductible is $500 per member.

## Travel

Medical evacuation is covered up to $50,000 per trip.
"""
BRONZE = """---
plan: bronze
---
# Bronze plan

## Deductible

The Bronze plan's in-network deductible is $6,500 per member.
"""
APPEALS = """# Appeals

File an internal appeal within 180 days of the denial notice. Form ACM-CL1 is for claims.
"""


def _add(k: Any, name: str, docs: dict[str, str], **meta: str) -> Any:
    return k.add_sources(name, [bytes_source(n, t.encode(), 1 << 20, metadata=meta) for n, t in docs.items()])


@pytest.fixture
def kb(knowledge: Any) -> Any:
    knowledge.create("acme")
    report = _add(knowledge, "acme", {"gold.md": GOLD, "bronze.md": BRONZE, "appeals.md": APPEALS})
    assert report.version == 1 and {f.outcome for f in report.files} == {"added"}
    return knowledge


def test_hybrid_search_finds_the_passage_with_provenance(kb: Any) -> None:
    r = kb.search("acme", "How much is the Gold deductible?", k=3)
    top = r.passages[0]
    assert top.document == "gold.md" and top.heading == "Gold plan > Deductible"
    doc = kb.document("acme", "gold.md")
    assert doc.text[top.start : top.end] == top.text and "$500" in top.text
    assert top.vector_rank is not None and top.keyword_rank is not None
    assert top.similarity > 0.5 and r.relevant


def test_vector_and_keyword_candidates(kb: Any) -> None:
    kbo, version = kb.resolve("acme")
    emb = kb.embedder_for(kbo)
    vec = kb.index.vector_search(kbo, version, emb.embed(["flown home when ill abroad"])[0], 2)
    assert len(vec) == 2 and vec[0].score >= vec[1].score
    chunks = kb.store.visible_chunks(kbo.id, version, [h.chunk_id for h in vec])
    assert "evacuation" in chunks[vec[0].chunk_id][0].text
    kw = kb.index.keyword_search(kbo, version, "ACM-CL1 form", 5)
    assert kw and "ACM-CL1" in kb.store.visible_chunks(kbo.id, version, [kw[0].chunk_id])[kw[0].chunk_id][0].text
    assert kb.index.keyword_search(kbo, version, "the of and", 5) == []  # stop words only


def test_keyword_match_rescues_an_exact_code(kb: Any) -> None:
    r = kb.search("acme", "ACM-CL1", k=1)
    assert r.passages[0].document == "appeals.md" and r.passages[0].keyword_rank == 1


def test_unchanged_readd_is_a_noop_and_a_change_replaces(kb: Any) -> None:
    again = _add(kb, "acme", {"gold.md": GOLD})
    assert not again.changed and again.version == 1 and again.files[0].outcome == "unchanged"
    changed = _add(kb, "acme", {"gold.md": GOLD.replace("$500", "$750")})
    assert changed.changed and changed.version == 2 and changed.files[0].outcome == "replaced"
    now = kb.search("acme", "Gold plan deductible", k=1).passages[0]
    assert "$750" in now.text and now.version == 2
    pinned = kb.search("acme@1", "Gold plan deductible", k=1).passages[0]
    assert "$500" in pinned.text and pinned.version == 1
    texts = [p.text for p in kb.search("acme", "Gold plan deductible $500", k=10).passages]
    assert not any("$500 per member" in t for t in texts)  # the old chunk is gone from v2


def test_deleted_document_is_unretrievable_at_once(kb: Any) -> None:
    assert any(p.document == "appeals.md" for p in kb.search("acme", "appeal a denial", k=5).passages)
    report = kb.remove_documents("acme", ["appeals.md"])
    assert report.version == 2 and report.files[0].outcome == "removed"
    for q in ("appeal a denial", "ACM-CL1"):
        assert all(p.document != "appeals.md" for p in kb.search("acme", q, k=10).passages)
    assert any(p.document == "appeals.md" for p in kb.search("acme@1", "appeal a denial", k=5).passages)
    with pytest.raises(PlinthError) as e:
        kb.remove_documents("acme", ["appeals.md"])
    assert e.value.code == ErrorCode.NOT_FOUND


def test_another_process_sees_changes_at_once(kb: Any, kb_backend: tuple[str, str], tmp_path: Path) -> None:
    other = make_knowledge(tmp_path / "other", *kb_backend)  # its own index, same store
    try:
        assert other.search("acme", "appeal a denial", k=1).passages[0].document == "appeals.md"
        kb.remove_documents("acme", ["appeals.md"])
        assert all(p.document != "appeals.md" for p in other.search("acme", "appeal a denial", k=10).passages)
        _add(kb, "acme", {"new.md": "# Dental\n\nAdult dental cleanings are not covered."})
        assert other.search("acme", "adult dental cleaning", k=1).passages[0].document == "new.md"
    finally:
        other.store.close()


def test_prune_keeps_recent_versions(kb: Any) -> None:
    kb.remove_documents("acme", ["appeals.md"])  # v2
    _add(kb, "acme", {"gold.md": GOLD.replace("$500", "$750")})  # v3
    out = kb.prune("acme", keep=2)
    assert out["oldest_version"] == 2 and out["versions_deleted"] == 2 and out["chunks_deleted"] >= 1
    with pytest.raises(PlinthError) as e:
        kb.search("acme@1", "appeal", k=1)
    assert e.value.code == ErrorCode.NOT_FOUND and "pruned" in e.value.message
    assert "$500" in kb.search("acme@2", "Gold deductible", k=1).passages[0].text
    assert "$750" in kb.search("acme@3", "Gold deductible", k=1).passages[0].text
    assert [v.version for v in kb.versions("acme")] == [2, 3]


def test_metadata_and_document_filters(kb: Any) -> None:
    only_bronze = kb.search("acme", "deductible per member", k=5, filters={"plan": "bronze"})
    assert {p.document for p in only_bronze.passages} == {"bronze.md"}
    by_name = kb.search("acme", "deductible per member", k=5, filters={"document": "g*.md"})
    assert {p.document for p in by_name.passages} == {"gold.md"}
    assert kb.search("acme", "deductible", k=5, filters={"plan": "platinum"}).passages == []


def test_unknown_versions_and_bad_queries(kb: Any) -> None:
    for ref in ("acme@9", "nope", "nope@1"):
        with pytest.raises(PlinthError) as e:
            kb.search(ref, "x")
        assert e.value.code == ErrorCode.NOT_FOUND
    for ref, q in (("acme@x", "x"), ("acme", "   ")):
        with pytest.raises(PlinthError) as e:
            kb.search(ref, q)
        assert e.value.code == ErrorCode.INVALID_REQUEST


def test_matches_exact_search(knowledge: Any, embedder: Any) -> None:
    """Top 10 of the index equals exact cosine top 10 (HNSW on pgvector, exact elsewhere)."""
    knowledge.create("many")
    rng = np.random.default_rng(0)
    words = "deductible copay claim appeal network pharmacy therapy maternity travel vaccine referral premium".split()
    docs = {f"d{i:03d}.md": f"# Note {i}\n\n" + " ".join(rng.choice(words, 12)) + f" item {i}." for i in range(300)}
    _add(knowledge, "many", docs)
    kbo, version = knowledge.resolve("many")
    ids, vecs = [], []
    for c in knowledge.store.chunks_for_index(kbo.id, 0, 10_000):
        ids.append(c.id)
        vecs.append(np.frombuffer(c.embedding, dtype="<f4"))
    matrix = np.stack(vecs)
    overlap = []
    for q in ("travel vaccine", "appeal a claim", "maternity therapy", "network referral premium"):
        qv = embedder.embed([q])[0]
        exact = {ids[i] for i in np.argsort(-(matrix @ qv))[:10]}
        got = {h.chunk_id for h in knowledge.index.vector_search(kbo, version, qv, 10)}
        overlap.append(len(exact & got) / 10)
    assert min(overlap) >= 0.9 and np.mean(overlap) >= 0.95


def test_concurrent_writers_both_land(knowledge: Any) -> None:
    import threading

    knowledge.create("busy")
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            _add(knowledge, "busy", {f"w{i}.md": f"# Writer {i}\n\nParagraph written by writer number {i}."})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _kbo, version, docs = knowledge.documents("busy")
    assert version == 4 and sorted(d.name for d in docs) == [f"w{i}.md" for i in range(4)]
    assert [v.version for v in knowledge.versions("busy")] == [0, 1, 2, 3, 4]


def test_citations_round_trip(knowledge: Any) -> None:
    from plinth.domain.knowledge import CitationRecord

    rec = CitationRecord("chatcmpl-abc", "acme", 3, "m", "q?", [{"index": 1, "document": "gold.md", "start": 0, "end": 5}])
    knowledge.record_citations(rec)
    got = knowledge.citations("chatcmpl-abc")
    assert got.citations == rec.citations and got.version == 3 and got.created_at is not None
    with pytest.raises(PlinthError) as e:
        knowledge.citations("chatcmpl-none")
    assert e.value.code == ErrorCode.NOT_FOUND


def test_delete_knowledge_base(kb: Any) -> None:
    kb.delete("acme")
    with pytest.raises(PlinthError) as e:
        kb.search("acme", "x")
    assert e.value.code == ErrorCode.NOT_FOUND
    kb.create("acme")  # the name is free again, and the new one is empty
    assert kb.search("acme", "deductible").passages == []


def test_keyword_search_skips_invisible_matches(knowledge: Any) -> None:
    """Many better-ranked matches of an old version must not push out the visible one."""
    knowledge.create("old")
    _add(knowledge, "old", {f"z{i:03d}.md": f"# Zebra {i}\n\nzebra zebra zebra stripes {i}." for i in range(80)})
    knowledge.remove_documents("old", [f"z{i:03d}.md" for i in range(80)])
    _add(knowledge, "old", {"keep.md": "# Keep\n\nOne zebra lives here, among many horses and other animals of the plain."})
    kbo, version = knowledge.resolve("old")
    hits = knowledge.index.keyword_search(kbo, version, "zebra", 5)
    rows = knowledge.store.visible_chunks(kbo.id, version, [h.chunk_id for h in hits])
    assert len(hits) == 1 and rows[hits[0].chunk_id][1].name == "keep.md"
    assert len(knowledge.index.keyword_search(kbo, 1, "zebra", 5)) == 5  # the old version still has them


def test_common_terms_are_dropped_only_on_large_knowledge_bases() -> None:
    from plinth.rag.index.base import prune_common_terms

    freq = {"plan": 9000, "deductible": 4000, "doula": 12, "evacuation": 40}
    assert prune_common_terms(["plan", "doula", "deductible"], freq, 500) == ["plan", "doula", "deductible"]
    assert prune_common_terms(["plan", "doula", "evacuation", "deductible"], freq, 20_000) == ["doula", "evacuation"]
    assert prune_common_terms(["plan", "deductible", "doula"], freq, 20_000) == ["doula", "deductible"]  # two rarest
