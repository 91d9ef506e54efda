"""Typed settings: ``PLINTH_*`` environment variables, an optional config file, defaults.

Precedence, highest first: values passed in code (CLI flags), environment variables,
the config file (``PLINTH_CONFIG`` or ``$PLINTH_HOME/config.yaml``; YAML or TOML), then the
defaults below. Settings are built once at start-up by :func:`load_settings` and passed
down; nothing builds them at import time.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from plinth.errors import ErrorCode, PlinthError

DEFAULT_HOME = Path("~/.plinth")
EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"


def _default_threads() -> int:
    # Every core, up to 8. On a 2-core machine a second busy process slows llama.cpp's
    # threads sharply (see docs/adr/0004): lower PLINTH_THREADS when sharing the machine.
    n = os.cpu_count() or 1
    return max(1, min(n, 8))


#: A secret's name: what remote models and the embedder name in ``api_key_secret``.
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST_PATTERN_RE = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


class SecretEntry(BaseModel):
    """One named secret: its value (masked in every dump and repr) and, optionally, the only
    hosts it may be sent to."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: SecretStr
    hosts: list[str] = Field(default_factory=list)

    @field_validator("value")
    @classmethod
    def _value(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("a secret's value must not be empty")
        return v

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = [h.strip().lower().rstrip(".") for h in v]
        for h in out:
            if not _HOST_PATTERN_RE.match(h):
                raise ValueError(f"a secret's hosts are host names (or *.suffix); got {h!r}")
        return out


class Settings(BaseSettings):
    """Everything plinth can be configured with. Each field is ``PLINTH_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PLINTH_", extra="forbid", validate_default=True)

    home: Path = Field(DEFAULT_HOME, description="Data directory: database, artifacts, caches, logs.")
    database_url: str | None = Field(
        None,
        description="Metadata store URL: sqlite:///PATH (default: $PLINTH_HOME/plinth.db) or postgresql://user@host:port/db for team mode.",
    )
    config: Path | None = Field(None, description="Optional YAML or TOML file with these settings.")

    # -- server ----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the API server binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the API server.")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body accepted (bytes); larger gets 413.")
    header_timeout_s: float = Field(
        10.0,
        ge=0.5,
        le=300,
        description="Time a client has to send a request's headers, counted from connecting (or from the end of the "
        "previous answer on a kept-alive connection); past it the server answers 408 and closes the connection "
        "(or just closes it when nothing was sent).",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    cors_allow_origins: list[str] = Field(
        default_factory=list,
        description="Origins whose browser pages may call the API directly (CORS), e.g. "
        '["https://app.example.com"]; ["*"] allows any origin (then never with credentials). Empty: no CORS '
        "headers, browsers allow same-origin calls only (the console is same-origin).",
    )
    cors_allow_credentials: bool = Field(
        False,
        description="Let those origins send cookies (a plinth session) with their calls. Off: browser apps "
        "authenticate with an API key in Authorization, which a page of another origin cannot take from the user.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IP addresses or CIDRs of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto headers are "
        "believed (the audit log and rate limits then see the client they name). Empty: forwarded headers are "
        'ignored from everyone, loopback included. JSON list in the environment, e.g. ["10.0.0.5", "10.1.0.0/16"].',
    )

    # -- outbound requests and secrets (ADR 0080, 0081) -----------------------------------------
    outbound_allow: list[str] = Field(
        default_factory=list,
        description="What the server may fetch from although it is internal: host names (an exact name or "
        "*.suffix), IP addresses and CIDRs. Private, loopback, unspecified, carrier-grade NAT, multicast and reserved "
        "addresses are refused unless listed here; link-local and cloud-metadata addresses are refused even when "
        'listed. JSON list in the environment, e.g. ["10.0.0.0/8", "vllm.internal"].',
    )
    outbound_public: bool = Field(
        True,
        description="Fetch from public internet addresses not in outbound_allow (false: only what outbound_allow lists).",
    )
    outbound_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="Longest one URL fetch (knowledge-base and dataset URLs) may take, redirects included."
    )
    outbound_max_redirects: int = Field(
        5, ge=0, le=20, description="Redirects a URL fetch follows, each checked by the same rules (remote engines follow none)."
    )
    secrets: dict[str, SecretEntry] = Field(
        default_factory=dict,
        description="Named secrets for remote engines and embedders (API keys), referenced by name (api_key_secret). "
        'A JSON object: {"openai-prod": "sk-..."} or {"openai-prod": {"value": "sk-...", "hosts": ["api.openai.com"]}} '
        "(then the secret is sent to those hosts only). Values never appear in answers, logs or the audit log.",
    )

    # -- serving ---------------------------------------------------------------------------
    default_model: str = Field(EMBEDDED_MODEL_NAME, description="Model loaded at start-up and used by `plinth chat`.")
    embedded_runtime: Literal["llamacpp", "torch"] = Field(
        "llamacpp",
        description="Runtime of the embedded model: llamacpp (fastest for one or a few streams on every CPU) or torch "
        "(its batching engine: faster from about 8 concurrent streams on CPUs that compute bf16, slower on AVX2-only "
        "CPUs; the GGUF is dequantised once). See docs/adr/0052.",
    )
    preload_default_model: bool = Field(True, description="Load the default model when the server starts.")
    max_tokens_limit: int = Field(4096, ge=1, description="Upper bound for max_tokens in a request.")
    default_max_tokens: int = Field(512, ge=1, description="max_tokens when a request gives none.")
    max_n: int = Field(4, ge=1, le=128, description="Upper bound for n (choices per request).")
    max_batch_size: int = Field(
        8,
        ge=1,
        le=256,
        description="Sequences a batching runtime (llama.cpp) decodes together per model. "
        "llama.cpp reserves a KV cache of max_batch_size x context_length tokens.",
    )
    max_concurrent_per_model: int | None = Field(
        None, ge=1, description="Requests generating at once per loaded model (default: the runtime's batch size); more wait in the queue."
    )
    prefill_chunk_tokens: int = Field(
        256, ge=16, description="Prompt tokens processed per scheduler step, so long prompts do not stall streams."
    )
    adapter_cache_bytes: int = Field(
        512 * 1024 * 1024, ge=0, description="LoRA adapters kept loaded per base model; least recently used beyond."
    )
    max_queued_per_model: int = Field(
        32, ge=0, description="Requests waiting per model; beyond this the server answers 429 with Retry-After."
    )
    queue_timeout_s: float = Field(120.0, gt=0, description="Longest a request waits in the queue before 429.")
    llamacpp_extra_buffers: bool = Field(
        False,
        description="Let llama.cpp repack weights into extra buffer types (AMX, interleaved). Off by default: "
        "llama.cpp 0.3.36 built with AMX crashes on some virtual machines and with LoRA adapters.",
    )
    torch_batching: bool = Field(
        True,
        description="Serve llama-family models on the torch runtime with its continuous-batching engine "
        "(false: one request at a time through transformers' own modules).",
    )
    torch_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto",
        description="What the torch runtime computes in: auto is bfloat16 where the CPU computes it natively "
        "(AVX512-BF16, AMX) or on a GPU, float32 otherwise.",
    )
    torch_batch_invariant: bool = Field(
        True,
        description="Run the torch engine's decode batches only at sizes measured at load to give each row the "
        "same logits, so a batched answer equals the answer served alone (false: any size, a little faster, "
        "answers may differ in near ties).",
    )
    threads: int = Field(default_factory=_default_threads, ge=1, description="CPU threads per llama.cpp model.")
    context_length: int = Field(4096, ge=256, description="Context window per request when loading a model (capped at the model's own).")
    upstream_timeout_s: float = Field(600.0, gt=0, description="Timeout for remote OpenAI-compatible engines.")
    import_dirs: list[Path] = Field(
        default_factory=list,
        description="Server directories the management API may import models from "
        "(always includes $PLINTH_HOME/imports). JSON list in the environment.",
    )

    # -- embeddings and knowledge bases (RAG) ------------------------------------------------
    embedding_model: str = Field(
        "minilm", description="Embedder backend: minilm (embedded all-MiniLM-L6-v2) or openai (a remote /v1/embeddings)."
    )
    embedding_url: str | None = Field(
        None, description="Base URL of a remote OpenAI-compatible embeddings API (e.g. http://tei:8080/v1), for embedding_model=openai."
    )
    embedding_remote_model: str | None = Field(None, description="Model name sent to the remote embeddings API.")
    embedding_api_key_secret: str | None = Field(
        None, description="Name of the secret (see secrets) holding the remote embeddings API key."
    )
    embedding_threads: int = Field(
        1, ge=1, le=64, description="CPU threads of the embedded embedder (1 was fastest on a shared 2-core machine)."
    )
    kb_chunk_tokens: int = Field(200, ge=16, le=4096, description="Largest chunk, in embedder tokens.")
    kb_chunk_overlap_tokens: int = Field(
        40, ge=0, le=1024, description="Tokens of the previous chunk repeated at the start of the next within a section."
    )
    kb_max_file_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest file a knowledge base ingests; larger files are refused."
    )
    kb_index: str = Field(
        "auto",
        description="Knowledge-base index: auto, embedded (exact vectors + SQLite FTS5 in process) or "
        "postgres (pgvector HNSW + Postgres full-text; needs the vector extension).",
    )
    kb_top_k: int = Field(4, ge=1, le=50, description="Passages put into the prompt per request.")
    kb_min_score: float = Field(
        0.3,
        ge=-1.0,
        le=1.0,
        description="Lowest cosine similarity of the best passage for an answer; below it the assistant says it does not know.",
    )

    # -- jobs: the durable queue and its workers --------------------------------------------
    jobs_local_worker: bool = Field(
        True, description="`plinth up` also runs a worker supervisor that executes queued jobs in child processes."
    )
    jobs_poll_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often a worker looks for jobs and a job's process checks for stop requests."
    )
    jobs_lease_s: float = Field(
        15.0,
        ge=2,
        le=3600,
        description="Lease of a running job; a worker renews it every third of this. A job whose "
        "lease expires (its worker was killed or cut off) is requeued or failed by the next worker that looks.",
    )
    jobs_stop_grace_s: float = Field(
        60.0,
        ge=0,
        description="How long a job asked to cancel or to yield to a higher-priority job may take to "
        "checkpoint and stop before its process is killed.",
    )
    jobs_shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        description="How long a stopping worker waits for its jobs to checkpoint before killing them; they are requeued either way.",
    )
    jobs_max_restarts: int = Field(
        2, ge=0, le=100, description="Requeues after a lost worker or a killed job process before the job fails."
    )
    jobs_enforce_memory: bool = Field(
        True, description="Kill a job whose processes use more memory (RSS) than it requested; it fails with memory_limit."
    )
    worker_cpu: int | None = Field(None, ge=1, description="CPU threads a worker offers (default: the CPUs this process may use).")
    worker_memory_bytes: int | None = Field(
        None, ge=64 * 1024 * 1024, description="Memory a worker offers (default: the machine's total memory)."
    )
    worker_gpus: int | None = Field(
        None, ge=0, description="GPUs a worker offers (default: NVIDIA GPUs found, limited by CUDA_VISIBLE_DEVICES)."
    )
    worker_queues: list[str] = Field(default_factory=list, description="Queues a worker takes jobs from (JSON list); empty: every queue.")
    # -- Ray: run some job kinds on a Ray cluster (ADR 0105) ----------------------------------
    ray_address: str | None = Field(
        None,
        description="Ray Jobs API address (the dashboard, e.g. http://127.0.0.1:8265): workers submit the jobs of "
        "ray_kinds they admit there; the cluster must share the store (database_url) and home with plinth.",
    )
    ray_kinds: list[str] = Field(
        default_factory=lambda: ["tune", "eval"], description="Job kinds run on Ray when ray_address is set (JSON list)."
    )
    ray_python: str | None = Field(
        None, description="Python on the Ray cluster that has plinth installed (default: the worker's own interpreter path)."
    )

    # -- datasets ----------------------------------------------------------------------------
    dataset_max_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1024,
        description="Largest dataset file `plinth datasets add` and server-path imports "
        "accept (uploads are also bounded by max_body_bytes).",
    )

    # -- guardrails --------------------------------------------------------------------------
    guardrails_default_policy: str | None = Field(
        None,
        description="Guardrail policy (NAME or NAME@VERSION) for model ids that have none attached; "
        "none by default (e.g. `default`, plinth's built-in policy).",
    )
    guardrails_record_events: bool = Field(
        True, description="Store guardrail findings (labels, offsets, scores; never text) as events in the metadata store."
    )

    # -- deployments, API keys, usage --------------------------------------------------------
    auth: bool = Field(
        False,
        description="Require an API key (Authorization: Bearer pk-...) on every route except /healthz and /readyz. "
        "Off for local single-user use; create the first key with `plinth keys create NAME --scope admin`.",
    )
    sso_user_header: str | None = Field(
        None,
        description="Header a single-sign-on proxy in front of plinth names the logged-in user with (e.g. X-Forwarded-User); "
        "believed only from PLINTH_TRUSTED_PROXIES, and the user must exist in plinth. None: no single sign-on.",
    )
    session_ttl_s: float = Field(12 * 3600, ge=60, le=30 * 24 * 3600, description="Lifetime of a login session, extended while it is used.")
    session_cookie_secure: bool = Field(
        True, description="Mark the session cookie Secure (sent over HTTPS only; browsers also send it to http://localhost)."
    )
    auth_cache_ttl_s: float = Field(
        2.0,
        ge=0,
        le=300,
        description="How long a server process trusts a key it has looked up; a key revoked or changed "
        "in another process stops working within this time (at once for requests that reserve tokens).",
    )
    deploy_sticky_header: str = Field(
        "x-plinth-user",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Request header whose value keeps one caller on one deployment revision when the request has no `user` field.",
    )
    deploy_check_interval_s: float = Field(
        1.0, gt=0, le=3600, description="Shortest time between two judgements of one deployment's rollout rules per process."
    )
    deploy_window_s: int = Field(
        300,
        ge=10,
        le=7 * 86400,
        description="Sliding window (seconds) in which a new deployment's canary is compared with its stable revision.",
    )
    usage_retention_days: int = Field(90, ge=1, le=3650, description="Usage records and feedback older than this are deleted.")

    # -- monitoring: the request log (ADR 0090) ------------------------------------------------
    request_log: bool = Field(True, description="Record every /v1 chat and text completion in the request log (off the hot path).")
    request_log_text: Literal["redacted", "none"] = Field(
        "redacted",
        description="Text the request log keeps: `redacted` = the prompt and answer as the attached guardrail policy left them "
        "(requests no policy checked are logged without text); `none` = no text at all.",
    )
    request_log_embeddings: bool = Field(
        True, description="Store the MiniLM embedding of each redacted prompt (computed by the writer thread), for drift and anomalies."
    )
    request_log_queue: int = Field(
        10_000, ge=10, le=10_000_000, description="Most requests waiting for the log writer; more are dropped and counted."
    )
    request_log_queue_text_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Most text (characters) waiting for the log writer; requests past it are logged without text and embedding.",
    )
    request_log_max_text_chars: int = Field(16_000, ge=0, le=10_000_000, description="Longest prompt or answer text kept per request.")
    request_log_retention_days: float = Field(30, gt=0, le=3650, description="Request log entries older than this are deleted.")
    request_log_max_bytes: int = Field(
        1024**3, ge=1024 * 1024, description="Most bytes the request log holds (all projects); the oldest entries go first."
    )
    request_log_prune_interval_s: float = Field(300, ge=1, le=86_400, description="How often the log writer prunes by age and size.")
    request_log_flag_score: float = Field(
        0.9, description="Entries whose anomaly score is above this are `flagged` (GET /api/v1/requests?flagged=true)."
    )

    # -- monitoring: alert rules (ADR 0094) ------------------------------------------------------
    alert_interval_s: float = Field(
        30.0, ge=0, le=86_400, description="How often each server process evaluates every project's enabled alert rules; 0 = never."
    )
    alert_external_url: str = Field(
        "", max_length=2000, description="This server's URL as alert webhooks name it (Alertmanager's externalURL, generatorURL)."
    )
    alert_webhook_timeout_s: float = Field(10.0, gt=0, le=300, description="Deadline of one webhook delivery attempt.")

    # -- automation: pipelines and triggers (ADR 0102, 0103) ---------------------------------------
    pipelines_interval_s: float = Field(
        2.0, ge=0, le=3600, description="How often each server process advances unfinished pipeline runs and checks triggers; 0 = never."
    )
    pipelines_lease_s: float = Field(
        30.0, ge=1, le=3600, description="How long a server holds a pipeline run before another server may take it over."
    )

    # -- monitoring: drift and anomaly scores (ADR 0091, 0092) -----------------------------------
    drift_schedule: dict[str, float] = Field(
        default_factory=dict,
        description='Deployments whose drift the server measures on a schedule: {"DEPLOYMENT" or "PROJECT/DEPLOYMENT": '
        "interval in seconds}, e.g. '{\"acme-assistant\": 3600}'. Empty (the default): only on demand and as `drift` jobs.",
    )
    drift_window: str = Field(
        "24h", pattern=r"^\d+(\.\d+)?[smhdw]$", description="The window of recent prompts a scheduled drift run compares (e.g. 24h)."
    )

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        self.home = Path(os.path.expanduser(str(self.home))).resolve()
        self.import_dirs = [Path(os.path.expanduser(str(p))).resolve() for p in self.import_dirs]
        if self.home / "imports" not in self.import_dirs:
            self.import_dirs.append(self.home / "imports")
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'plinth.db'}"
        if self.default_max_tokens > self.max_tokens_limit:
            self.default_max_tokens = self.max_tokens_limit
        return self

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        # Fail closed on settings that used to read server environment variables (ADR 0081).
        given = isinstance(data, dict) and data.get("embedding_api_key_env") is not None
        if given or os.environ.get("PLINTH_EMBEDDING_API_KEY_ENV"):
            raise ValueError(
                "embedding_api_key_env (PLINTH_EMBEDDING_API_KEY_ENV) was removed: plinth no longer sends an environment "
                "variable named by a setting; define the key as a named secret (PLINTH_SECRETS) and set "
                "PLINTH_EMBEDDING_API_KEY_SECRET to its name"
            )
        return data

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v  # pydantic says what is wrong
        out: dict[str, Any] = {}
        for name, entry in v.items():
            if not SECRET_NAME_RE.match(str(name)):
                raise ValueError(
                    f"secret name {str(name)[:80]!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
                )
            out[str(name)] = {"value": entry} if isinstance(entry, (str, SecretStr)) else entry
        return out

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin != "*" and not re.match(r"^https?://[A-Za-z0-9.\-\[\]:]+$", origin):
                raise ValueError(f"a CORS origin is '*' or scheme://host[:port] without a path (got {origin!r})")
        return v

    @model_validator(mode="after")
    def _cors_credentials(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_allow_origins:
            raise ValueError("PLINTH_CORS_ALLOW_CREDENTIALS needs named origins, not '*'")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        out = []
        for item in v:
            try:
                out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"trusted_proxies holds IP addresses or CIDRs; got {item!r}") from None
        return out

    @field_validator("outbound_allow")
    @classmethod
    def _outbound_allow(cls, v: list[str]) -> list[str]:
        out = []
        for item in v:
            entry = item.strip().lower()
            try:
                out.append(str(ipaddress.ip_network(entry.strip("[]"), strict=False)))
                continue
            except ValueError:
                pass
            if not _HOST_PATTERN_RE.match(entry):
                raise ValueError(f"outbound_allow holds host names (or *.suffix), IP addresses and CIDRs; got {item!r}")
            out.append(entry.rstrip("."))
        return out

    @field_validator("embedding_api_key_secret")
    @classmethod
    def _embedding_secret(cls, v: str | None) -> str | None:
        if v is not None and not SECRET_NAME_RE.match(v):
            raise ValueError(f"embedding_api_key_secret must be a secret's name; got {v[:80]!r}")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.lower()
        if v not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError(f"log_level must be one of debug, info, warning, error, critical; got {v!r}")
        return v

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str | None) -> str | None:
        if v and not v.startswith(("sqlite://", "postgresql", "postgres://")):
            raise ValueError(f"database_url must start with sqlite:// or postgresql://; got {v!r}")
        return v

    @field_validator("kb_index")
    @classmethod
    def _kb_index(cls, v: str) -> str:
        if v not in {"auto", "embedded", "postgres"}:
            raise ValueError(f"kb_index must be auto, embedded or postgres; got {v!r}")
        return v

    def plain_secrets(self) -> dict[str, Any]:
        """The secrets with their values, for the one place that must hand them on: a job's
        own process, which gets its settings on a pipe (``model_dump`` masks them)."""
        return {name: {"value": e.value.get_secret_value(), "hosts": list(e.hosts)} for name, e in self.secrets.items()}

    # -- derived paths ---------------------------------------------------------------------
    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def models_dir(self) -> Path:
        """Materialised model directories (hard links into the artifact store)."""
        return self.home / "models"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls, init_settings, env_settings))


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads the optional config file named by ``config`` (init or env) or found in the home."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource, env: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._init = init
        self._env = env

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        explicit = self._init().get("config") or self._env().get("config")
        if explicit:
            path = Path(os.path.expanduser(str(explicit)))
            if not path.is_file():
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"config file {str(path)!r} does not exist")
        else:
            home = self._init().get("home") or self._env().get("home") or DEFAULT_HOME
            path = Path(os.path.expanduser(str(home))) / "config.yaml"
            if not path.is_file():
                return {}
        return read_config_file(path)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"config file {str(path)!r} cannot be read: {e}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"config file {str(path)!r} is not valid: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"config file {str(path)!r} must hold a mapping of settings")
    return {str(k).lower().replace("-", "_"): v for k, v in data.items() if str(k).lower() != "config"}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; invalid values become one PlinthError listing every problem."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as e:
        problems = "; ".join(
            f"{'PLINTH_' + '.'.join(str(p) for p in err['loc']).upper() if err['loc'] else 'settings'}: {err['msg']}" for err in e.errors()
        )
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid settings: {problems}") from None
    except SettingsError as e:
        # A list/dict setting whose environment value is not JSON (e.g. PLINTH_IMPORT_DIRS=/srv).
        m = re.search(r'field "([^"]+)"', str(e))
        var = f"PLINTH_{m.group(1).upper()}" if m else "settings"
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f'invalid settings: {var}: cannot parse the value ({e.__cause__ or e}); list settings take JSON, e.g. ["/srv/models"]',
        ) from None
