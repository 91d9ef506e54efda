"""``GET /api/v1/export/k8s``: the project as Kubernetes manifests (ADR 0104) — a JSON object
of files or the same files as a ``.tar.gz`` — canonical error shape."""

from __future__ import annotations

import io
import tarfile
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from plinth.api.deps import services_of
from plinth.automation.k8s import IMAGE_PATTERN, STORAGE_PATTERN, K8sExporter, K8sOptions, validate_export

router = APIRouter(prefix="/api/v1/export", tags=["automation"])

_DNS = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DEFAULTS = K8sOptions()


class K8sExportOut(BaseModel):
    files: dict[str, str] = Field(description="path in the export folder -> file text (YAML manifests, kustomization.yaml, README.md)")
    summary: dict[str, int] = Field(description="manifests by kind")
    notes: list[str] = Field(description="what the README tells the platform team (apply order, secrets to create)")
    warnings: list[str] = Field(description="what could not be exported as it is")
    problems: dict[str, list[str]] | None = Field(
        None, description="validate=true: path -> schema violations against the pinned API schemas (empty: all valid)"
    )


@router.get(
    "/k8s",
    response_model=K8sExportOut,
    responses={
        200: {
            "description": "the files as JSON (format=json) or a gzip'd tar of them (format=tar.gz)",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
)
def export_k8s(
    request: Request,
    kserve_mode: Literal["serverless", "raw"] = Query(
        "serverless", description="KServe deployment mode: serverless canary or raw + HTTPRoute"
    ),
    namespace: str = Query(_DEFAULTS.namespace, min_length=1, max_length=63, pattern=_DNS),
    image: str = Query(_DEFAULTS.image, min_length=1, max_length=500, pattern=IMAGE_PATTERN, description="plinth's container image"),
    vllm_image: str = Query(_DEFAULTS.vllm_image, min_length=1, max_length=500, pattern=IMAGE_PATTERN),
    model_storage: str = Query(_DEFAULTS.model_storage, min_length=4, max_length=500, pattern=STORAGE_PATTERN),
    gateway: str = Query(_DEFAULTS.gateway, min_length=1, max_length=63, pattern=_DNS, description="Gateway API Gateway for raw mode"),
    training_runtime: str = Query(_DEFAULTS.training_runtime, min_length=1, max_length=63, pattern=_DNS),
    gpus: int = Query(_DEFAULTS.gpus_per_replica, ge=0, le=64, description="GPUs per vLLM replica"),
    validate: bool = Query(False, description="check every manifest against the pinned schemas (needs jsonschema)"),
    format: Literal["json", "tar.gz"] = Query("json"),
) -> Any:
    s = services_of(request)
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
    export = K8sExporter.from_services(s).export(options)
    files = export.files()
    if format == "tar.gz":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"k8s/{path}")
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        return Response(buf.getvalue(), media_type="application/gzip", headers={"Content-Disposition": 'attachment; filename="k8s.tar.gz"'})
    return K8sExportOut(
        files=files,
        summary=export.summary(),
        notes=export.notes,
        warnings=export.warnings,
        problems=validate_export(export) if validate else None,
    )
