"""``plinth kb``: knowledge bases — create, add, list, show, search, rm-doc, rm, versions,
prune, eval, citations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from plinth.cli.common import console, get_services, get_settings, make_progress
from plinth.errors import ErrorCode, PlinthError

kb_app = typer.Typer(help="Knowledge bases (RAG): ingest documents, search them, answer from them with citations.", no_args_is_help=True)


def _services() -> Any:
    return get_services(get_settings(), embedded=False)


def _meta(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"--meta takes KEY=VALUE; got {item!r}")
        out[key.strip()] = value.strip()
    return out


@kb_app.command("create")
def kb_create(
    name: str,
    description: str = typer.Option("", "--description", "-d", help="What the knowledge base holds."),
    chunk_tokens: int | None = typer.Option(None, help="Largest chunk in tokens (PLINTH_KB_CHUNK_TOKENS, default 200)."),
    overlap_tokens: int | None = typer.Option(None, help="Overlap between chunks of a section (default 40)."),
) -> None:
    """Create an empty knowledge base (version 0)."""
    s = _services()
    try:
        kb = s.knowledge.create(name, description=description, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)
        console.print(f"[green]created[/] {kb.name} (embedder {kb.embedding_model}, {kb.dim}-d, chunks of {kb.chunk_tokens} tokens)")
    finally:
        s.close()


@kb_app.command("add")
def kb_add(
    name: str,
    paths: list[Path] | None = typer.Argument(None, help="Files or folders: .md .txt .html .pdf, or .zip archives of them."),
    urls: list[str] | None = typer.Option(
        None, "--url", help="An http(s) URL of an HTML, Markdown, text or PDF document, fetched through the outbound rules (repeatable)."
    ),
    meta: list[str] | None = typer.Option(None, "--meta", help="KEY=VALUE metadata for every document (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Add or replace documents (files, folders or URLs); unchanged ones are skipped. One new version per call."""
    if not paths and not urls:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "give files or folders to add, or --url")
    s = _services()
    try:
        sources = s.knowledge.sources_from_paths(paths or [], _meta(meta))
        sources += s.knowledge.sources_from_urls(urls or [], _meta(meta))
        with make_progress() as progress:
            task = progress.add_task(f"Adding to {name}", total=sum(src.size for src in sources) or None)
            report = s.knowledge.add_sources(name, sources, progress=lambda _doc, n: progress.advance(task, n))
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
        else:
            _print_report(report)
        if any(f.outcome == "failed" for f in report.files):
            raise typer.Exit(1)
    finally:
        s.close()


def _print_report(report: Any) -> None:
    table = Table(title=f"{report.knowledge_base}: version {report.version}" + ("" if report.changed else " (nothing changed)"))
    for col in ("document", "outcome", "chunks", "error"):
        table.add_column(col)
    style = {"added": "green", "replaced": "yellow", "removed": "yellow", "failed": "red", "skipped": "dim"}
    for f in report.files:
        s = style.get(f.outcome, "")
        table.add_row(f.name, f"[{s}]{f.outcome}[/]" if s else f.outcome, str(f.chunks or ""), f.error or "")
    console.print(table)


@kb_app.command("list")
def kb_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Knowledge bases with their current version."""
    s = _services()
    try:
        kbs = s.knowledge.list()
        if as_json:
            console.print_json(json.dumps([{"name": k.name, "version": k.current_version, "description": k.description} for k in kbs]))
            return
        table = Table()
        for col in ("name", "version", "embedder", "description"):
            table.add_column(col)
        for k in kbs:
            table.add_row(k.name, str(k.current_version), k.embedder, k.description)
        console.print(table)
    finally:
        s.close()


@kb_app.command("show")
def kb_show(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Documents of a version (default: the current one) and the version history."""
    s = _services()
    try:
        kb, version, docs = s.knowledge.documents(ref)
        versions = s.knowledge.versions(kb.name)
        if as_json:
            console.print_json(
                json.dumps(
                    {
                        "name": kb.name,
                        "version": version,
                        "current_version": kb.current_version,
                        "documents": [{"name": d.name, "chunks": d.chunk_count, "sha256": d.sha256, "metadata": d.metadata} for d in docs],
                        "versions": [
                            {"version": v.version, "note": v.note, "documents": v.documents, "chunks": v.chunks} for v in versions
                        ],
                    }
                )
            )
            return
        console.print(f"[bold]{kb.name}[/]@{version} (current {kb.current_version}) {kb.description}")
        console.print(f"  embedder {kb.embedding_model} ({kb.dim}-d), chunks of {kb.chunk_tokens} tokens, overlap {kb.overlap_tokens}")
        table = Table(title="documents")
        for col in ("document", "type", "chunks", "metadata"):
            table.add_column(col)
        for d in docs:
            table.add_row(d.name, d.media_type, str(d.chunk_count), ", ".join(f"{k}={v}" for k, v in d.metadata.items()))
        console.print(table)
        vt = Table(title="versions")
        for col in ("version", "note", "documents", "chunks", "created"):
            vt.add_column(col)
        for v in versions:
            vt.add_row(
                str(v.version), v.note, str(v.documents), str(v.chunks), v.created_at.strftime("%Y-%m-%d %H:%M:%S") if v.created_at else ""
            )
        console.print(vt)
    finally:
        s.close()


@kb_app.command("search")
def kb_search(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    query: str = typer.Argument(...),
    k: int = typer.Option(5, "-k", help="Passages to show."),
    where: list[str] | None = typer.Option(None, "--where", help="Metadata filter KEY=VALUE, or document=GLOB (repeatable)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Hybrid search (vectors + BM25, fused): passages with document, heading, offsets, score."""
    s = _services()
    try:
        result = s.knowledge.search(ref, query, k=k, filters=_meta(where) or None)
        if as_json:
            console.print_json(json.dumps(result.as_dict()))
            return
        if not result.passages:
            console.print("no passages")
        for n, p in enumerate(result.passages, start=1):
            mark = "" if p.similarity >= result.min_score else " [dim](below kb_min_score)[/]"
            console.print(
                f"[bold][{n}][/] [cyan]{p.document}[/] — {p.heading or '(top)'}  "
                f"[dim]chars {p.start}-{p.end}, score {p.score:.4f}, similarity {p.similarity:.3f}[/]{mark}"
            )
            console.print("    " + p.text.strip().replace("\n", "\n    "), highlight=False)
    finally:
        s.close()


@kb_app.command("rm-doc")
def kb_rm_doc(name: str, documents: list[str] = typer.Argument(..., help="Document names as `plinth kb show` lists them.")) -> None:
    """Remove documents: a new version without them; older versions keep them until pruned."""
    s = _services()
    try:
        report = s.knowledge.remove_documents(name, documents)
        _print_report(report)
    finally:
        s.close()


@kb_app.command("rm")
def kb_rm(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete a knowledge base with every version."""
    if not yes and not typer.confirm(f"Delete knowledge base {name} and all its versions?"):
        raise typer.Exit(1)
    s = _services()
    try:
        s.knowledge.delete(name)
        console.print(f"[green]removed[/] {name}")
    finally:
        s.close()


@kb_app.command("prune")
def kb_prune(name: str, keep: int = typer.Option(..., "--keep", help="Versions to keep (the newest).")) -> None:
    """Delete old versions and what only they could see."""
    s = _services()
    try:
        out = s.knowledge.prune(name, keep)
        console.print(
            f"pruned {out['versions_deleted']} versions, {out['chunks_deleted']} chunks; oldest version now {out['oldest_version']}"
        )
    finally:
        s.close()


@kb_app.command("eval")
def kb_eval(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    data: Path = typer.Option(..., "--data", help="JSON Lines: {question, expected: [{document, contains?}]}"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Retrieval quality on a question set: recall@1/3/5/10 and MRR."""
    s = _services()
    try:
        questions = s.knowledge.questions_from_file(data)
        report = s.knowledge.evaluate(ref, questions)
        if as_json:
            console.print_json(json.dumps(report))
            return
        console.print(f"[bold]{ref}[/] (version {report['version']}), {report['questions']} questions")
        for k, v in report["recall"].items():
            console.print(f"  recall{k}: {v:.3f}")
        console.print(f"  MRR:       {report['mrr']:.3f}")
        for m in report["misses"]:
            top = m["top"] or {}
            console.print(f"  [yellow]miss[/] (rank {m['rank']}): {m['question']}  -> top: {top.get('document')} / {top.get('heading')}")
    finally:
        s.close()


@kb_app.command("citations")
def kb_citations(response_id: str = typer.Argument(..., help="The id of a chat response, chatcmpl-...")) -> None:
    """The passages a response was given."""
    s = _services()
    try:
        rec = s.knowledge.citations(response_id)
        console.print_json(
            json.dumps(
                {
                    "response_id": rec.response_id,
                    "knowledge_base": rec.knowledge_base,
                    "version": rec.version,
                    "query": rec.query,
                    "citations": rec.citations,
                }
            )
        )
    finally:
        s.close()
