"""``plinth export k8s DIR`` (and ``plinth k8s export DIR``): the project as Kubernetes
manifests — KServe InferenceServices on vLLM, Kueue queues, Kubeflow TrainJobs, ConfigMaps,
Secret references and plinth's gateway — with a kustomization.yaml and a README (ADR 0104)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from plinth.automation.k8s import KSERVE_MODES, K8sExporter, K8sOptions, validate_export
from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.errors import ErrorCode, PlinthError

k8s_app = typer.Typer(help="Kubernetes: export the project as manifests (KServe, Kueue, Kubeflow Trainer).", no_args_is_help=True)

_DEFAULTS = K8sOptions()


def export_k8s(
    directory: Path = typer.Argument(..., help="Folder to write the manifests to (created; files of the same name are replaced)."),
    kserve_mode: str = typer.Option(
        _DEFAULTS.kserve_mode,
        "--kserve-mode",
        help="serverless (canaryTrafficPercent, Knative) or raw (two InferenceServices + an HTTPRoute).",
    ),
    namespace: str = typer.Option(_DEFAULTS.namespace, "--namespace", "-n", help="Namespace of the namespaced objects."),
    image: str = typer.Option(_DEFAULTS.image, "--image", help="plinth's container image (gateway and TrainJobs)."),
    vllm_image: str = typer.Option(_DEFAULTS.vllm_image, "--vllm-image", help="vLLM's OpenAI server image."),
    model_storage: str = typer.Option(_DEFAULTS.model_storage, "--model-storage", help="KServe storage URI of model and adapter files."),
    gateway: str = typer.Option(_DEFAULTS.gateway, "--gateway", help="Gateway API Gateway the raw-mode HTTPRoutes attach to."),
    training_runtime: str = typer.Option(
        _DEFAULTS.training_runtime, "--training-runtime", help="Kubeflow ClusterTrainingRuntime of TrainJobs."
    ),
    gpus: int = typer.Option(_DEFAULTS.gpus_per_replica, "--gpus", help="GPUs per vLLM replica."),
    validate: bool = typer.Option(False, "--validate", help="Check every manifest against the pinned schemas (needs jsonschema)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write the live project as Kubernetes manifests a platform team applies with `kubectl apply -k DIR`."""
    if kserve_mode not in KSERVE_MODES:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"--kserve-mode must be serverless or raw, not {kserve_mode!r}", param="kserve_mode")
    if directory.exists() and not directory.is_dir():
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{directory} exists and is not a folder", param="directory")
    options = K8sOptions(
        namespace=namespace,
        kserve_mode=kserve_mode,
        image=image,
        vllm_image=vllm_image,
        model_storage=model_storage,
        gateway=gateway,
        training_runtime=training_runtime,
        gpus_per_replica=gpus,
    )
    options.check()
    services = get_services(get_settings(), embedded=False)
    try:
        with console.status("reading the project"):
            export = K8sExporter.from_services(services).export(options)
    finally:
        services.close()
    problems = validate_export(export) if validate else None
    written = export.write(directory)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "directory": str(directory),
                    "files": sorted(str(p.relative_to(directory)) for p in written),
                    "summary": export.summary(),
                    "warnings": export.warnings,
                    "problems": problems,
                }
            )
        )
    else:
        table = Table(title=f"{escape(str(directory))} ({options.kserve_mode} mode, namespace {options.namespace})")
        table.add_column("kind")
        table.add_column("count", justify="right")
        for kind, n in export.summary().items():
            table.add_row(kind, str(n))
        console.print(table)
        for w in export.warnings:
            err_console.print(f"[yellow]warning:[/yellow] {escape(w)}")
        if problems is not None and not problems:
            console.print(f"[green]all {len(export.manifests) + 1} manifests valid[/green] against the pinned schemas")
        console.print(f"apply with: kubectl apply -k {escape(str(directory))}  (read {escape(str(directory / 'README.md'))} first)")
    if problems:
        for path, errs in problems.items():
            for e in errs:
                err_console.print(f"[red]invalid[/red] {escape(path)}: {escape(e)}")
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{len(problems)} manifest(s) do not validate", param="validate")


k8s_app.command("export")(export_k8s)
