"""``plinth tune``, ``plinth runs``, ``plinth registry`` and ``plinth eval``.

Training and evaluation run as jobs of the durable queue (kinds ``tune`` and ``eval``): a
``plinth up`` server or a ``plinth worker`` runs them. When no worker is alive, these
commands run one in this process for the job's duration (``--no-local-worker`` turns that
off), so they work on a laptop without a server too. ``--detach`` submits and returns.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.domain.numbers import VERSION_MAX, whole_number
from plinth.errors import ErrorCode, PlinthError

runs_app = typer.Typer(help="Tracked runs: list, show (with the loss curve), compare, metrics.", no_args_is_help=True)
registry_app = typer.Typer(help="The model registry: registered models, versions with lineage, aliases, model cards.", no_args_is_help=True)


class _EvalGroup(TyperGroup):
    """``plinth eval MODEL --dataset D`` (options after the model) beside ``plinth eval compare A B``:
    a first word that names a subcommand goes to it; otherwise the words are the evaluation's
    own arguments and options, in any order."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: typer's own click Context
        if args and args[0] in self.commands:
            super(TyperGroup, self).parse_args(ctx, [])  # the group's own parameters at their defaults (Command's parsing)
            ctx._protected_args, ctx.args = args[:1], args[1:]
            return ctx.args
        ctx.allow_interspersed_args = True
        return super().parse_args(ctx, args)


eval_app = typer.Typer(help="Evaluate a model on a dataset version; compare versions.", invoke_without_command=True, cls=_EvalGroup)


@contextlib.contextmanager
def _session(embedded: bool = True) -> Iterator[Any]:
    services = get_services(get_settings(), embedded=embedded)
    try:
        yield services
    finally:
        services.close()


@contextlib.contextmanager
def _worker_if_needed(services: Any, wanted: bool) -> Iterator[None]:
    """A worker in this process while the block runs, when none is alive and ``wanted``."""
    if not wanted or services.jobs.live_workers():
        yield
        return
    from plinth.jobs.worker import WorkerSupervisor

    sup = WorkerSupervisor(services.settings, services.store, metrics=services.metrics)
    err_console.print(
        "[dim]no worker is running: running the job in this process (start `plinth up` or `plinth worker` to queue it instead)[/]"
    )
    sup.start()
    try:
        yield
    finally:
        sup.stop()


def _run_job(services: Any, kind: str, spec: dict[str, Any], *, detach: bool, local_worker: bool, name: str | None = None) -> Any:
    from plinth.cli.jobs import _follow

    job = services.jobs.submit(kind, spec, name=name)
    console.print(f"submitted [bold]{job.id}[/] ({kind})", highlight=False)
    if detach:
        console.print(f"follow it with: plinth jobs logs -f {job.id}")
        return job
    with _worker_if_needed(services, local_worker):
        _follow(services, job.id)
    job = services.jobs.get(job.id)
    if job.state.value != "succeeded":
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"job {job.id} {job.state.value}: {job.message or ''}".strip())
    return job


# -- tune --------------------------------------------------------------------------------------
def tune(
    base_model: str = typer.Option(..., "--base-model", "-m", help="Catalog model to fine-tune."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset NAME or NAME@VERSION."),
    method: str = typer.Option("lora", "--method", help="lora, full or prompt_tuning."),
    name: str | None = typer.Option(None, "--name", help="Registered model name (default: the dataset's name)."),
    steps: int | None = typer.Option(None, "--steps", help="Optimizer steps (default: --epochs over the data)."),
    epochs: float | None = typer.Option(None, "--epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    learning_rate: float | None = typer.Option(None, "--lr", help="Learning rate (default by method)."),
    rank: int | None = typer.Option(None, "--rank", help="LoRA rank."),
    alpha: float | None = typer.Option(None, "--alpha", help="LoRA alpha."),
    target: list[str] = typer.Option([], "--target", help="LoRA target module (repeatable), e.g. q_proj."),
    seed: int | None = typer.Option(None, "--seed"),
    spec_json: str | None = typer.Option(None, "--spec", help="More spec fields as JSON (or @FILE)."),
    no_register: bool = typer.Option(False, "--no-register", help="Do not register the result."),
    detach: bool = typer.Option(False, "--detach", help="Submit and return."),
    local_worker: bool = typer.Option(True, "--local-worker/--no-local-worker", help="Run the job here when no worker is alive."),
) -> None:
    """Fine-tune a model on a dataset: a tracked run, then a registered version served at once."""
    from plinth.cli.jobs import _parse_spec

    spec: dict[str, Any] = _parse_spec(spec_json) if spec_json else {}
    spec.update({"base_model": base_model, "dataset": dataset, "method": method})
    for key, value in (
        ("name", name),
        ("max_steps", steps),
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("learning_rate", learning_rate),
        ("seed", seed),
    ):
        if value is not None:
            spec[key] = value
    if no_register:
        spec["register"] = False
    lora = dict(spec.get("lora") or {})
    if rank is not None:
        lora["rank"] = rank
    if alpha is not None:
        lora["alpha"] = alpha
    if target:
        lora["target_modules"] = list(target)
    if lora:
        spec["lora"] = lora
    with _session() as services:
        job = _run_job(services, "tune", spec, detach=detach, local_worker=local_worker, name=f"tune {dataset}")
        if not detach and job.result:
            r = job.result
            _summary_table(
                "fine-tuning",
                {
                    k: r.get(k)
                    for k in (
                        "run_id",
                        "registered",
                        "served_as",
                        "steps",
                        "final_train_loss",
                        "best_val_loss",
                        "tokens_per_s",
                        "train_seconds",
                    )
                },
            )
            if r.get("run_id"):
                _loss_lines(services, r["run_id"])


def _summary_table(title: str, values: dict[str, Any]) -> None:
    table = Table(show_header=False, title=title)
    for k, v in values.items():
        if v is not None:
            table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    console.print(table)


def _loss_lines(services: Any, run_id: str) -> None:
    from plinth.tracking.plots import sparkline

    for key, pts in services.tracking.metrics(run_id).items():
        if key.endswith("loss") and pts:
            console.print(f"{key:>12} {sparkline([p.value for p in pts])}  {pts[0].value:.3f} -> {pts[-1].value:.3f}", highlight=False)


# -- runs --------------------------------------------------------------------------------------
@runs_app.command("list")
def runs_list(
    kind: str | None = typer.Option(None, "--kind", help="lora, full, prompt_tuning, eval..."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Runs, newest first."""
    with _session(embedded=False) as services:
        runs = services.tracking.list(kind=kind, limit=limit)
        if as_json:
            console.print_json(json.dumps([r.public_dict() for r in runs]))
            return
        table = Table(title="Runs")
        for col in ("id", "name", "kind", "status", "dataset", "loss", "val loss", "started"):
            table.add_column(col, overflow="fold")
        for r in runs:
            s = r.summary
            table.add_row(
                r.id[:12],
                r.name,
                r.kind,
                r.status.value,
                r.dataset or "-",
                _num(s.get("final_train_loss") or s.get("loss")),
                _num(s.get("best_val_loss")),
                r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "-",
            )
        console.print(table)


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) and not isinstance(v, bool) else "-"


def _run_id(services: Any, prefix: str) -> str:
    if len(prefix) == 32:
        return prefix
    matches = [r.id for r in services.tracking.list(limit=10_000) if r.id.startswith(prefix)]
    if len(matches) != 1:
        raise PlinthError(ErrorCode.NOT_FOUND, f"run {prefix!r} " + ("does not exist" if not matches else "is ambiguous"))
    return matches[0]


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."), as_json: bool = typer.Option(False, "--json")
) -> None:
    """A run: params, final metrics, artifacts and its loss curves."""
    with _session(embedded=False) as services:
        rid = _run_id(services, run_id)
        run = services.tracking.get(rid)
        artifacts = services.tracking.artifacts_of(rid)
        if as_json:
            console.print_json(json.dumps({**run.public_dict(), "artifacts": [a.public_dict() for a in artifacts]}))
            return
        table = Table(show_header=False, title=f"run {run.id}")
        for k, v in run.public_dict().items():
            if k in ("params", "summary", "tags"):
                continue
            table.add_row(k, str(v))
        console.print(table)
        _summary_table("final metrics", run.summary)
        params = Table(show_header=False, title="params")
        for k, v in sorted(run.params.items()):
            params.add_row(k, json.dumps(v) if isinstance(v, dict | list) else str(v))
        console.print(params)
        if artifacts:
            at = Table(title="artifacts")
            for col in ("name", "kind", "size", "digest"):
                at.add_column(col)
            for a in artifacts:
                at.add_row(a.name, a.kind.value, f"{a.size_bytes:,}", a.digest[:19])
            console.print(at)
        _loss_lines(services, rid)


@runs_app.command("compare")
def runs_compare(run_ids: list[str] = typer.Argument(..., help="Two or more run ids (or prefixes).")) -> None:
    """Runs side by side: the params that differ and the final metrics."""
    with _session(embedded=False) as services:
        ids = [_run_id(services, r) for r in run_ids]
        c = services.tracking.compare(ids)
        table = Table(title="compare runs")
        table.add_column("")
        for r in c["runs"]:
            table.add_column(f"{r['name']}\n{r['id'][:12]}")
        for k in c["differing_params"]:
            table.add_row(f"[bold]{k}[/]", *[str(v) for v in c["params"][k]])
        for k, vals in c["metrics"].items():
            table.add_row(k, *[_num(v) for v in vals])
        console.print(table)


@runs_app.command("metrics")
def runs_metrics(run_id: str, key: str | None = typer.Option(None, "--key", help="One metric (default: all).")) -> None:
    """Every logged value of a run's metrics, with a sparkline per metric."""
    from plinth.tracking.plots import sparkline

    with _session(embedded=False) as services:
        rid = _run_id(services, run_id)
        for k, pts in services.tracking.metrics(rid, [key] if key else None).items():
            vals = [p.value for p in pts]
            console.print(
                f"[bold]{k}[/] ({len(vals)} points) {sparkline(vals)} min {min(vals):.4g} max {max(vals):.4g} last {vals[-1]:.4g}",
                highlight=False,
            )


@runs_app.command("plot")
def runs_plot(run_id: str, out: str = typer.Option("loss.svg", "--out", "-o", help="SVG file to write.")) -> None:
    """Write the run's loss curves as an SVG chart."""
    with _session(embedded=False) as services:
        svg = services.tracking.loss_curve_svg(_run_id(services, run_id))
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(svg)
        console.print(f"[green]wrote[/] {out}")


# -- registry ----------------------------------------------------------------------------------
@registry_app.command("list")
def registry_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Registered models with their latest version and aliases."""
    with _session(embedded=False) as services:
        models = services.registry.list()
        if as_json:
            console.print_json(json.dumps([m.public_dict() for m in models]))
            return
        table = Table(title="Registered models")
        for col in ("name", "versions", "aliases", "created"):
            table.add_column(col)
        for m in models:
            aliases = ", ".join(f"{a}->{v}" for a, v in sorted(m.aliases.items())) or "-"
            table.add_row(m.name, str(m.latest_version), aliases, m.created_at.strftime("%Y-%m-%d %H:%M") if m.created_at else "-")
        console.print(table)


def _parse_version(ref: str) -> tuple[str, int | None]:
    name, sep, v = ref.partition("@")
    if not sep:
        return name, None
    number = whole_number(v, minimum=1, maximum=VERSION_MAX)
    if number is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"expected NAME or NAME@VERSION (VERSION from 1 to {VERSION_MAX}), got {ref!r}")
    return name, number


@registry_app.command("show")
def registry_show(ref: str = typer.Argument(..., help="NAME or NAME@VERSION."), as_json: bool = typer.Option(False, "--json")) -> None:
    """A registered model's versions, or one version with its lineage and evaluations."""
    with _session(embedded=False) as services:
        name, version = _parse_version(ref)
        if version is None:
            rm = services.registry.get(name)
            versions = services.registry.versions(name)
            if as_json:
                console.print_json(json.dumps({**rm.public_dict(), "versions": [v.public_dict() for v in versions]}))
                return
            table = Table(title=f"{name} (aliases: {', '.join(f'{a}->{v}' for a, v in rm.aliases.items()) or 'none'})")
            for col in ("version", "kind", "served as", "dataset", "val loss", "run", "created"):
                table.add_column(col, overflow="fold")
            for v in versions:
                table.add_row(
                    str(v.version),
                    v.kind,
                    v.served_as,
                    v.dataset or "-",
                    _num(v.metrics.get("best_val_loss")),
                    (v.run_id or "-")[:12],
                    v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else "-",
                )
            console.print(table)
            return
        mv = services.registry.version(name, version)
        reports = services.registry.reports(name, version)
        if as_json:
            console.print_json(json.dumps({**mv.public_dict(), "evaluations": [r.public_dict() for r in reports]}))
            return
        table = Table(show_header=False, title=f"{mv.ref} lineage")
        for k, v in mv.public_dict().items():
            if k not in ("recipe", "metrics"):
                table.add_row(k, str(v))
        table.add_row("recipe", json.dumps(mv.recipe))
        table.add_row("metrics", json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in mv.metrics.items()}))
        console.print(table)
        for r in reports:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in r.metrics.items() if isinstance(v, float))
            console.print(f"evaluation {r.id[:12]} on {r.dataset} ({r.split}): {shown}", highlight=False)


@registry_app.command("card")
def registry_card(ref: str = typer.Argument(..., help="NAME@VERSION.")) -> None:
    """The generated model card (Markdown)."""
    with _session(embedded=False) as services:
        name, version = _parse_version(ref)
        if version is None:
            version = services.registry.get(name).latest_version
        console.print(escape(services.registry.version(name, version).model_card), highlight=False)


@registry_app.command("alias")
def registry_alias(
    ref: str = typer.Argument(..., help="NAME@VERSION."), alias: str = typer.Argument(..., help="e.g. production, staging.")
) -> None:
    """Point an alias (production, staging...) at a version; `NAME@ALIAS` then serves it."""
    with _session(embedded=False) as services:
        name, version = _parse_version(ref)
        if version is None:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "give the version: NAME@VERSION")
        rm = services.registry.set_alias(name, alias, version)
        console.print(f"[green]{name}@{alias}[/] -> version {rm.aliases[alias]}")


@registry_app.command("unalias")
def registry_unalias(name: str, alias: str) -> None:
    with _session(embedded=False) as services:
        services.registry.delete_alias(name, alias)
        console.print(f"[green]removed[/] alias {name}@{alias}")


@registry_app.command("rm")
def registry_rm(ref: str = typer.Argument(..., help="NAME (every version) or NAME@VERSION.")) -> None:
    """Remove a version (or a whole registered model) and what serves it."""
    with _session(embedded=False) as services:
        name, version = _parse_version(ref)
        if version is None:
            gone = services.registry.delete_model(name)
            console.print(f"[green]removed[/] {name} and its {len(gone)} versions")
        else:
            services.registry.delete_version(name, version)
            console.print(f"[green]removed[/] {name}@{version}")


# -- eval --------------------------------------------------------------------------------------
@eval_app.callback()
def evaluate(
    context: typer.Context,
    model: str | None = typer.Argument(None, help="Model id: a catalog model, BASE:ADAPTER, or a registry NAME@VERSION."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Dataset NAME@VERSION."),
    split: str = typer.Option("validation", "--split", help="validation, train or all."),
    max_samples: int = typer.Option(200, "--max-samples"),
    max_tokens: int = typer.Option(128, "--max-tokens"),
    detach: bool = typer.Option(False, "--detach", help="Submit and return."),
    local_worker: bool = typer.Option(True, "--local-worker/--no-local-worker", help="Run the job here when no worker is alive."),
    suite: str = typer.Option("generation", "--suite", help="generation (loss, ROUGE...) or assistant (the answer-key suite)."),
    data: Path | None = typer.Option(
        None, "--data", help="A suite file (JSONL) added as a dataset version first (named by --dataset, else the file's name)."
    ),
) -> None:
    """Evaluate MODEL on a dataset: loss, perplexity, exact match, token F1, ROUGE-L. The
    report is stored on the registry version. `plinth eval compare A B` compares versions.

    With --suite assistant, MODEL (a model id, BASE:ADAPTER, NAME@VERSION or a deployment)
    answers the suite's questions through the serving path, with its knowledge base and
    guardrails: answer, citation and refusal accuracy, off-topic declines, groundedness and
    PII leaks (`plinth eval MODEL --suite assistant --data examples/acme-health/assistant-eval.jsonl`)."""
    if context.invoked_subcommand is not None:
        return
    if suite not in ("generation", "assistant"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"--suite must be generation or assistant; got {suite!r}", param="suite")
    if suite == "assistant":
        _assistant_eval(model, dataset, data, max_samples, max_tokens, detach=detach, local_worker=local_worker)
        return
    if model is None or dataset is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "usage: plinth eval MODEL --dataset NAME@VERSION (or plinth eval compare A B)")
    spec = {"model": model, "dataset": dataset, "split": split, "max_samples": max_samples, "max_tokens": max_tokens}
    with _session() as services:
        job = _run_job(services, "eval", spec, detach=detach, local_worker=local_worker, name=f"eval {model}")
        if not detach and job.result:
            report = services.store.get_eval_report(job.result["report"])
            _summary_table(f"{model} on {report.dataset} ({report.split})", dict(report.metrics.items()))
            for s in report.samples[:3]:
                console.print(
                    f"[dim]Q:[/] {escape(s['prompt'][:160])}\n[dim]reference:[/] {escape(s['reference'][:200])}\n"
                    f"[dim]answer:[/] {escape(s['prediction'][:200])}\n",
                    highlight=False,
                )


def _assistant_eval(
    model: str | None, dataset: str | None, data: Path | None, max_samples: int, max_tokens: int, *, detach: bool, local_worker: bool
) -> None:
    if model is None or (dataset is None and data is None):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "usage: plinth eval MODEL --suite assistant --data FILE (or --dataset NAME@VERSION)")
    with _session() as services:
        if data is not None:
            name = dataset or re.sub(r"[^A-Za-z0-9._-]+", "-", data.stem).strip(".-_") or "assistant-eval"
            version, created = services.datasets.add(data, name, validation_fraction=0.0)
            console.print(f"suite {version.ref} ({'added' if created else 'unchanged'}, {version.rows} questions)", highlight=False)
            dataset = version.ref
        assert dataset is not None
        spec: dict[str, Any] = {"model": model, "dataset": dataset, "max_tokens": max_tokens}
        if max_samples != 200:  # the generation suite's default; the assistant suite asks every question by default
            spec["max_samples"] = max_samples
        job = _run_job(services, "assistant-eval", spec, detach=detach, local_worker=local_worker, name=f"assistant eval {model}")
        if not detach and job.result:
            report = services.store.get_eval_report(job.result["report"])
            _summary_table(f"{model} on {report.dataset} (assistant suite)", dict(report.metrics.items()))
            failed = [s for s in report.samples if not _assistant_passed(s)]
            for s in failed[:5]:
                console.print(
                    f"[dim]{s['kind']} {escape(s['id'])}:[/] {escape(s['question'][:160])}\n[dim]answer:[/] {escape(s['answer'][:200])}\n",
                    highlight=False,
                )


def _assistant_passed(s: dict[str, Any]) -> bool:
    key = {"answerable": "correct_with_citation", "unanswerable": "refusal_correct", "off_topic": "declined"}.get(s.get("kind", ""), "")
    return bool(s.get(key)) and not s.get("pii_leaks")


@eval_app.command("compare")
def eval_compare(models: list[str] = typer.Argument(..., help="Model ids or registry versions (NAME@VERSION).")) -> None:
    """The latest evaluation of each model side by side."""
    from plinth.tuning.evaluation import compare

    with _session(embedded=False) as services:
        c = compare(services, models)
        table = Table(title="evaluations")
        table.add_column("metric")
        for row in c["models"]:
            rep = row["report"]
            table.add_column(f"{row['model']}\n{rep['dataset'] if rep else 'no report'}")
        for k in c["metrics"]:
            table.add_row(k, *[_num((row["report"] or {}).get("metrics", {}).get(k)) for row in c["models"]])
        console.print(table)


# -- export ------------------------------------------------------------------------------------
def export(
    model: str = typer.Argument(..., help="Registry NAME@VERSION (or a served BASE:ADAPTER)."),
    fmt: str = typer.Option("gguf", "--format", "-f", help="gguf, safetensors (merged) or gguf-lora."),
    quant: str = typer.Option("q8_0", "--quant", help="For gguf: q8_0, q4_k_m or f16."),
    name: str | None = typer.Option(None, "--name", help="Catalog name of the export."),
    evaluate_on: str | None = typer.Option(None, "--evaluate-on", help="Dataset NAME@VERSION (default: the training dataset)."),
    max_samples: int = typer.Option(50, "--max-samples", help="Rows evaluated after export."),
    detach: bool = typer.Option(False, "--detach"),
    local_worker: bool = typer.Option(True, "--local-worker/--no-local-worker"),
) -> None:
    """Export a fine-tune (merged safetensors, GGUF, runtime LoRA GGUF) and evaluate the export as served."""
    spec: dict[str, Any] = {"model": model, "format": fmt, "quant": quant, "eval_max_samples": max_samples}
    if name:
        spec["name"] = name
    if evaluate_on:
        spec["evaluate_on"] = evaluate_on
    with _session() as services:
        job = _run_job(services, "export", spec, detach=detach, local_worker=local_worker, name=f"export {model}")
        if not detach and job.result:
            _summary_table(f"export of {model}", {k: v for k, v in job.result.items() if k not in ("artifact_digest",)})
