"""``plinth jobs``, ``plinth queues``, ``plinth priority-classes`` and ``plinth worker``."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.domain.jobs import JobState, PreemptionPolicy, Resources, format_resources
from plinth.errors import ErrorCode, PlinthError

jobs_app = typer.Typer(help="The job queue: submit, list, show, logs, cancel, retry.", no_args_is_help=True)
queues_app = typer.Typer(help="Queues and their resource quotas.", no_args_is_help=True)
classes_app = typer.Typer(help="Priority classes (named priority values).", no_args_is_help=True)

_STATE_STYLE = {
    "queued": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


@contextlib.contextmanager
def _session() -> Iterator[Any]:
    services = get_services(get_settings(), embedded=False)
    try:
        yield services
    finally:
        services.close()


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]"


def _parse_spec(spec: str | None) -> dict[str, Any]:
    if spec is None:
        return {}
    text = spec
    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot read the spec file {str(path)!r}: {e}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"--spec is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "--spec must be a JSON object")
    return value


def _parse_labels(labels: list[str]) -> dict[str, str]:
    out = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"--label must be KEY=VALUE, got {item!r}")
        out[key] = value
    return out


# -- jobs -------------------------------------------------------------------------------------
@jobs_app.command("submit")
def submit(
    kind: str = typer.Argument(..., help="Job kind (see `plinth jobs kinds`)."),
    spec: str | None = typer.Option(None, "--spec", help="The spec as JSON, or @FILE holding it."),
    queue: str | None = typer.Option(None, "--queue", "-q", help="Queue (default: default)."),
    priority: str | None = typer.Option(None, "--priority", "-p", help="Priority class (default: normal)."),
    cpu: int | None = typer.Option(None, "--cpu", help="CPU threads to request."),
    memory: str | None = typer.Option(None, "--memory", help="Memory to request, e.g. 4GiB."),
    gpus: int | None = typer.Option(None, "--gpus", help="GPUs to request."),
    name: str | None = typer.Option(None, "--name", help="A name to recognise the job by."),
    label: list[str] = typer.Option([], "--label", "-l", help="KEY=VALUE (repeatable)."),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key", help="Submitting again with it returns the same job."),
    max_restarts: int | None = typer.Option(None, "--max-restarts", help="Requeues after a lost worker before failing."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Stay and follow the job's progress and log until it ends."),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
) -> None:
    """Submit a job. Bad input is refused before anything is queued."""
    with _session() as services:
        jobs = services.jobs
        resources = jobs.resources_for(kind, cpu=cpu, memory=memory, gpus=gpus)
        job, created = jobs.submit_request(
            kind,
            _parse_spec(spec),
            queue=queue,
            priority_class=priority,
            resources=resources,
            idempotency_key=idempotency_key,
            name=name,
            labels=_parse_labels(label),
            max_restarts=max_restarts,
        )
        if as_json:
            console.print_json(json.dumps(job.public_dict()))
        else:
            verb = "submitted" if created else "already submitted with this idempotency key:"
            console.print(
                f"[green]{verb}[/] {job.id} ({job.kind}, queue {job.queue}, priority {job.priority_class}, "
                f"{format_resources(job.resources)})"
            )
            if not jobs.live_workers():
                err_console.print("[yellow]note:[/] no worker is running; the job waits until `plinth up` or `plinth worker` starts")
        if follow:
            final = _follow(services, job.id)
            if final is not JobState.SUCCEEDED:
                raise typer.Exit(1)


@jobs_app.command("list")
def list_jobs(
    state: list[str] = typer.Option([], "--state", "-s", help="queued, running, succeeded, failed, cancelled (repeatable)."),
    kind: str | None = typer.Option(None, "--kind"),
    queue: str | None = typer.Option(None, "--queue", "-q"),
    label: list[str] = typer.Option([], "--label", "-l", help="KEY=VALUE (repeatable; all must match)."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List jobs, newest first."""
    try:
        states = tuple(JobState(s) for s in state)
    except ValueError:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"--state must be one of {', '.join(s.value for s in JobState)}") from None
    with _session() as services:
        jobs = services.jobs.list(states=states, kind=kind, queue=queue, labels=_parse_labels(label), limit=limit)
        if as_json:
            console.print_json(json.dumps([j.public_dict() for j in jobs]))
            return
        table = Table(title="Jobs")
        for col in ("id", "kind", "name", "state", "progress", "queue", "priority", "attempt", "created"):
            table.add_column(col, no_wrap=col in ("id", "created"))
        for j in jobs:
            table.add_row(
                j.id,
                j.kind,
                j.name or "-",
                _state(j.state.value) + (f" ({j.reason.value})" if j.reason.value not in ("submitted", "admitted", "completed") else ""),
                _progress_text(j),
                j.queue,
                f"{j.priority_class} ({j.priority})",
                str(j.attempt),
                j.created_at.strftime("%Y-%m-%d %H:%M:%S") if j.created_at else "-",
            )
        console.print(table)


def _progress_text(job: Any) -> str:
    p = job.progress
    if p.total:
        text = f"{p.done:g}/{p.total:g}"
    elif p.done:
        text = f"{p.done:g}"
    else:
        return "-"
    return text + (f" {escape(p.message)}" if p.message else "")


@jobs_app.command("show")
def show(
    job_id: str = typer.Argument(..., help="The job id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow its progress until it ends."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one job: state, reason, resources, attempts, progress, result or error."""
    with _session() as services:
        job = services.jobs.get(job_id)
        if as_json:
            console.print_json(json.dumps(job.public_dict()))
            return
        table = Table(show_header=False, title=f"job {job.id}")
        table.add_row("kind", job.kind)
        if job.name:
            table.add_row("name", escape(job.name))
        table.add_row("state", f"{_state(job.state.value)} ({job.reason.value})")
        if job.message:
            table.add_row("message", escape(job.message))
        table.add_row("queue", job.queue)
        table.add_row("priority", f"{job.priority_class} ({job.priority})")
        table.add_row("resources", format_resources(job.resources) + (f" (GPU ids {list(job.gpu_ids)})" if job.gpu_ids else ""))
        table.add_row("attempts", f"{job.attempt} (restarts {job.restarts}/{job.max_restarts}, preemptions {job.preemptions})")
        if job.stop_request:
            table.add_row("stop requested", job.stop_request.value + (f" by {job.preempted_by}" if job.preempted_by else ""))
        if job.worker_id:
            table.add_row("worker", job.worker_id + (f" (pid {job.process_id})" if job.process_id else ""))
        if job.labels:
            table.add_row("labels", ", ".join(f"{k}={v}" for k, v in job.labels.items()))
        table.add_row("spec", escape(json.dumps(job.spec)))
        for label, value in (("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at)):
            if value:
                table.add_row(label, value.isoformat(timespec="seconds"))
        if job.result is not None:
            table.add_row("result", escape(json.dumps(job.result)))
        if job.error is not None:
            table.add_row("error", f"[red]{escape(json.dumps(job.error))}[/]")
        console.print(table)
        if follow:
            final = _follow(services, job.id, show_logs=False) if not job.state.terminal else job.state
            if final is not JobState.SUCCEEDED:
                if job.state.terminal and job.message:
                    err_console.print(f"job {job.id} {_state(job.state.value)}: {escape(job.message)}")
                raise typer.Exit(1)
        elif job.progress.total or job.progress.message:
            with _bar() as progress:
                _draw(progress, _task(progress, job.id), job)


@jobs_app.command("logs")
def logs(
    job_id: str = typer.Argument(..., help="The job id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines, with a progress bar, until the job ends."),
    tail: int | None = typer.Option(None, "--tail", "-n", help="Only the last N lines."),
) -> None:
    """Print a job's log (its own lines, the queue's notes, and a crashed process's output)."""
    with _session() as services:
        if follow:
            final = _follow(services, job_id, tail=tail)
            if final is not JobState.SUCCEEDED:
                raise typer.Exit(1)
            return
        after = 0
        first = True
        while True:
            lines = services.jobs.logs(job_id, after=after, tail=tail if first else None, limit=10_000)
            first = False
            for line in lines:
                _print_line(console, line)
            if tail is not None or len(lines) < 10_000:
                break
            after = lines[-1].seq


def _print_line(con: Any, line: Any) -> None:
    stamp = line.created_at.strftime("%H:%M:%S") if line.created_at else ""
    style = {"system": "dim", "stderr": "red"}.get(line.stream, "")
    text = escape(line.line)
    con.print(f"[dim]{stamp} #{line.attempt}[/] " + (f"[{style}]{text}[/]" if style else text), highlight=False, soft_wrap=True)


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[state]}"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _task(progress: Progress, description: str) -> Any:
    return progress.add_task(description, total=None, count="", state="", note="")


def _draw(progress: Progress, task: Any, job: Any) -> None:
    p = job.progress
    metrics = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(p.metrics.items())[:4])
    note = " ".join(x for x in (escape(p.message or ""), escape(metrics)) if x)
    progress.update(
        task,
        total=p.total or None,
        completed=p.done,
        count=f"{p.done:g}/{p.total:g}" if p.total else "",
        state=_state(job.state.value) + (f" ({job.stop_request.value} requested)" if job.stop_request else ""),
        note=note,
    )


def _follow(services: Any, job_id: str, *, tail: int | None = None, show_logs: bool = True) -> JobState:
    """Draw the job's progress bar (and print its log above it) until it ends."""
    final = None
    with _bar() as progress:
        task = _task(progress, job_id)
        for event in services.jobs.follow(job_id, tail=tail, poll_s=services.settings.jobs_poll_interval_s):
            if event.type == "log":
                if show_logs:
                    _print_line(progress.console, event.line)
            else:
                _draw(progress, task, event.job)
                final = event.job
    assert final is not None
    colour = _STATE_STYLE.get(final.state.value, "white")
    tail_msg = f": {escape(final.message)}" if final.message and final.state is not JobState.SUCCEEDED else ""
    err_console.print(f"job {final.id} [{colour}]{final.state.value}[/]{tail_msg}")
    return final.state


@jobs_app.command("cancel")
def cancel(job_id: str = typer.Argument(..., help="The job id.")) -> None:
    """Cancel a job: at once when queued; a running one is asked to stop."""
    with _session() as services:
        job = services.jobs.cancel(job_id)
        what = "cancelled" if job.state is JobState.CANCELLED else "cancel requested for"
        console.print(f"[green]{what}[/] {job.id}")


@jobs_app.command("retry")
def retry(job_id: str = typer.Argument(..., help="The job id.")) -> None:
    """Put a failed or cancelled job back in the queue; it resumes from its checkpoint."""
    with _session() as services:
        job = services.jobs.retry(job_id)
        console.print(f"[green]requeued[/] {job.id}")


@jobs_app.command("rm")
def rm(job_id: str = typer.Argument(..., help="The job id.")) -> None:
    """Delete a finished job, its log and its checkpoint."""
    with _session() as services:
        services.jobs.delete(job_id)
        console.print(f"[green]removed[/] {job_id}")


@jobs_app.command("kinds")
def kinds() -> None:
    """The job kinds this installation can run."""
    from plinth.jobs import executor_entries

    table = Table(title="Job kinds")
    table.add_column("kind")
    table.add_column("default request")
    table.add_column("description")
    for e in executor_entries():
        table.add_row(e.kind, format_resources(e.default_resources or Resources()), e.description)
    console.print(table)


@jobs_app.command("workers")
def workers() -> None:
    """Workers that are alive now."""
    with _session() as services:
        table = Table(title="Workers")
        for col in ("id", "host", "pid", "offers", "queues", "heartbeat"):
            table.add_column(col)
        for w in services.jobs.live_workers():
            table.add_row(
                w.id,
                w.hostname,
                str(w.pid),
                format_resources(w.capacity),
                ", ".join(w.queues) or "all",
                w.heartbeat_at.strftime("%H:%M:%S") if w.heartbeat_at else "-",
            )
        console.print(table)


# -- queues ------------------------------------------------------------------------------------
def _quota(cpu: int, memory: str, gpus: int) -> Resources:
    from plinth.jobs.resources import parse_bytes

    return Resources(cpu=cpu, memory=parse_bytes(memory), gpus=gpus)


@queues_app.command("list")
def queues_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Queues with their quota and what their jobs use now."""
    with _session() as services:
        usage = services.jobs.queue_usage()
        queues = services.jobs.list_queues()
        if as_json:
            console.print_json(
                json.dumps(
                    [
                        {
                            **q.public_dict(),
                            "running": usage.get(q.name, {}).get("running", 0),
                            "queued": usage.get(q.name, {}).get("queued", 0),
                        }
                        for q in queues
                    ]
                )
            )
            return
        table = Table(title="Queues")
        for col in ("name", "quota", "in use", "running", "queued", "preemption"):
            table.add_column(col)
        for q in queues:
            u = usage.get(q.name, {"running": 0, "queued": 0, "used": Resources.zero()})
            table.add_row(
                q.name,
                format_resources(q.quota),
                format_resources(u["used"]),
                str(u["running"]),
                str(u["queued"]),
                q.preemption.value,
            )
        console.print(table)


@queues_app.command("create")
def queues_create(
    name: str,
    cpu: int = typer.Option(..., "--cpu", help="CPU threads the queue's running jobs may use together."),
    memory: str = typer.Option(..., "--memory", help="Memory they may use together, e.g. 16GiB."),
    gpus: int = typer.Option(0, "--gpus"),
    preemption: PreemptionPolicy = typer.Option(PreemptionPolicy.LOWER_PRIORITY, "--preemption"),
    description: str = typer.Option("", "--description"),
) -> None:
    """Create a queue with a resource quota (no larger than the machines offer)."""
    with _session() as services:
        q = services.jobs.create_queue(name, _quota(cpu, memory, gpus), preemption=preemption, description=description)
        console.print(f"[green]created[/] queue {q.name} ({format_resources(q.quota)})")


@queues_app.command("update")
def queues_update(
    name: str,
    cpu: int | None = typer.Option(None, "--cpu"),
    memory: str | None = typer.Option(None, "--memory"),
    gpus: int | None = typer.Option(None, "--gpus"),
    preemption: PreemptionPolicy | None = typer.Option(None, "--preemption"),
    description: str | None = typer.Option(None, "--description"),
) -> None:
    """Change a queue's quota (fields left out keep their value), preemption or description."""
    with _session() as services:
        quota = None
        if cpu is not None or memory is not None or gpus is not None:
            old = services.jobs.get_queue(name).quota
            quota = Resources(
                cpu=old.cpu if cpu is None else cpu,
                memory=old.memory if memory is None else _quota(1, memory, 0).memory,
                gpus=old.gpus if gpus is None else gpus,
            )
        q = services.jobs.update_queue(name, quota=quota, preemption=preemption, description=description)
        console.print(f"[green]updated[/] queue {q.name} ({format_resources(q.quota)}, preemption {q.preemption.value})")


@queues_app.command("rm")
def queues_rm(name: str) -> None:
    """Delete a queue that has no queued or running jobs."""
    with _session() as services:
        services.jobs.delete_queue(name)
        console.print(f"[green]removed[/] queue {name}")


@classes_app.command("list")
def classes_list() -> None:
    """Priority classes, highest first."""
    with _session() as services:
        table = Table(title="Priority classes")
        for col in ("name", "value", "description"):
            table.add_column(col)
        for p in services.jobs.list_priority_classes():
            table.add_row(p.name, str(p.value), p.description)
        console.print(table)


@classes_app.command("create")
def classes_create(name: str, value: int, description: str = typer.Option("", "--description")) -> None:
    """Create a priority class: a higher value is admitted first and may preempt lower ones."""
    with _session() as services:
        p = services.jobs.create_priority_class(name, value, description)
        console.print(f"[green]created[/] priority class {p.name} ({p.value})")


@classes_app.command("rm")
def classes_rm(name: str) -> None:
    """Delete a priority class (jobs keep the value they were submitted with)."""
    with _session() as services:
        services.jobs.delete_priority_class(name)
        console.print(f"[green]removed[/] priority class {name}")


# -- the standalone worker -----------------------------------------------------------------------
def worker(
    cpu: int | None = typer.Option(None, "--cpu", help="CPU threads to offer (default: this machine's)."),
    memory: str | None = typer.Option(None, "--memory", help="Memory to offer, e.g. 8GiB (default: this machine's)."),
    gpus: int | None = typer.Option(None, "--gpus", help="GPUs to offer (default: those found)."),
    queue: list[str] = typer.Option([], "--queue", "-q", help="Take jobs only from this queue (repeatable)."),
) -> None:
    """Run a worker: take jobs from the queue and run each in its own process, until Ctrl+C."""
    import logging

    from plinth.jobs.resources import machine_capacity, parse_bytes
    from plinth.jobs.worker import WorkerSupervisor

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with _session() as services:
        base = machine_capacity(settings)
        capacity = Resources(
            cpu=cpu or base.cpu,
            memory=parse_bytes(memory) if memory else base.memory,
            gpus=base.gpus if gpus is None else gpus,
        )
        sup = WorkerSupervisor(settings, services.store, capacity=capacity, queues=queue or None, metrics=services.metrics)

        def _stop(signum: int, _frame: Any) -> None:
            err_console.print(f"worker stopping ({signal.Signals(signum).name}); running jobs checkpoint and go back to the queue")
            sup.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        console.print(
            f"[bold green]worker[/] {sup.id} offering {format_resources(capacity)} "
            f"on {'queues ' + ', '.join(sup.queues) if sup.queues else 'every queue'}; Ctrl+C to stop",
            highlight=False,
        )
        sys.stdout.flush()
        sup.run_forever()


__all__ = ["classes_app", "jobs_app", "queues_app", "worker"]
