"""Every Prometheus metric plinth exports, declared in one place.

Each :class:`Metrics` owns its own registry, so several apps (tests) never collide and
``/metrics`` shows exactly this process's numbers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
JOB_WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
GUARDRAIL_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)
TOKEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "plinth_http_requests", "HTTP requests by route template, method and status", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "plinth_http_request_duration_seconds",
            "HTTP request latency (to the last byte)",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("plinth_errors", "Errors answered, by error code", ["code"], registry=r)
        self.stream_errors = Counter(
            "plinth_stream_errors",
            "Streams (server-sent events) a failure ended early, by route; each is logged with its traceback",
            ["route"],
            registry=r,
        )
        self.ttft = Histogram(
            "plinth_time_to_first_token_seconds",
            "Time from request admission to the first generated token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "plinth_inter_token_latency_seconds",
            "Time between generated tokens",
            ["model"],
            buckets=TOKEN_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "plinth_queue_wait_seconds",
            "Time requests waited for a generation slot",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("plinth_prompt_tokens", "Prompt tokens processed", ["model"], registry=r)
        self.completion_tokens = Counter("plinth_completion_tokens", "Completion tokens generated", ["model"], registry=r)
        self.generations = Counter("plinth_generations", "Finished generations by finish reason", ["model", "finish_reason"], registry=r)
        self.queue_depth = Gauge("plinth_queue_depth", "Requests waiting for a generation slot", ["model"], registry=r)
        self.running = Gauge("plinth_running_requests", "Generations running now", ["model"], registry=r)
        self.generating = Gauge(
            "plinth_generating",
            "Generations the engine is still running (drops when a cancel takes effect)",
            ["model"],
            registry=r,
        )
        self.rejected = Counter("plinth_rejected_requests", "Requests refused with 429 because the queue was full", ["model"], registry=r)
        self.model_loads = Counter("plinth_model_loads", "Model loads by runtime and outcome", ["runtime", "outcome"], registry=r)
        self.model_load_seconds = Histogram(
            "plinth_model_load_seconds", "Time to load a model", ["runtime"], buckets=LATENCY_BUCKETS, registry=r
        )

        # -- jobs ------------------------------------------------------------------------
        self.jobs_submitted = Counter("plinth_jobs_submitted", "Jobs submitted, by kind", ["kind"], registry=r)
        self.jobs = Gauge(
            "plinth_jobs", "Jobs queued and running per queue, as of this process's last look", ["queue", "state"], registry=r
        )
        self.job_transitions = Counter(
            "plinth_job_transitions", "Job state changes made by this process's worker", ["state", "reason"], registry=r
        )
        self.job_preemptions = Counter(
            "plinth_job_preemptions", "Running jobs asked to yield to a higher-priority job", ["queue"], registry=r
        )
        self.job_queue_wait = Histogram(
            "plinth_job_queue_wait_seconds", "Time from queued to admitted", ["queue"], buckets=JOB_WAIT_BUCKETS, registry=r
        )

        # -- knowledge bases and embeddings ------------------------------------------------
        self.kb_searches = Counter(
            "plinth_knowledge_base_searches",
            "Knowledge-base searches; outcome hit = a passage passed kb_min_score",
            ["knowledge_base", "outcome"],
            registry=r,
        )
        self.kb_search_seconds = Histogram(
            "plinth_knowledge_base_search_seconds",
            "Knowledge-base search time (embedding the query + hybrid retrieval)",
            ["knowledge_base"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.kb_ingested_chunks = Counter(
            "plinth_knowledge_base_ingested_chunks", "Chunks stored in knowledge bases", ["knowledge_base"], registry=r
        )
        self.embedding_inputs = Counter("plinth_embedding_inputs", "Texts embedded for /v1/embeddings", ["model"], registry=r)

        # -- guardrails ------------------------------------------------------------------------
        self.guardrail_hits = Counter(
            "plinth_guardrail_hits",
            "Guardrail findings by policy rule (detector), action, deployment (served model id) and direction",
            ["detector", "action", "deployment", "direction"],
            registry=r,
        )
        self.guardrail_check_seconds = Histogram(
            "plinth_guardrail_check_seconds",
            "Time spent in guardrail checks per request and direction (input; output after the answer; retrieved passages)",
            ["direction"],
            buckets=GUARDRAIL_BUCKETS,
            registry=r,
        )

        # -- deployments, keys, usage ------------------------------------------------------------
        self.deployment_requests = Counter(
            "plinth_deployment_requests",
            "Requests a deployment routed, by revision, role (stable/canary) and outcome (ok, error, refused, cancelled)",
            ["deployment", "revision", "role", "outcome"],
            registry=r,
        )
        self.deployment_latency = Histogram(
            "plinth_deployment_request_duration_seconds",
            "Whole-request latency of a deployment's successful requests",
            ["deployment", "revision"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.deployment_tokens = Counter(
            "plinth_deployment_tokens",
            "Tokens of a deployment's requests by revision and kind (prompt, completion)",
            ["deployment", "revision", "kind"],
            registry=r,
        )
        self.deployment_rollbacks = Counter(
            "plinth_deployment_rollbacks",
            "Rollbacks by trigger (manual, auto) and the rule breached (auto)",
            ["deployment", "trigger", "rule"],
            registry=r,
        )
        self.deployment_gate_refusals = Counter(
            "plinth_deployment_gate_refusals", "Candidates refused by a deployment's evaluation gate", ["deployment"], registry=r
        )
        self.auth_failures = Counter(
            "plinth_auth_failures",
            "Refused calls by reason (missing, malformed, invalid, revoked, expired, scope, model)",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "plinth_rate_limited_requests",
            "Requests refused by a key's limits (requests_per_minute, tokens_per_minute, budget)",
            ["limit"],
            registry=r,
        )
        self.key_tokens = Counter("plinth_key_tokens", "Tokens used per API key (name) and kind", ["key", "kind"], registry=r)
        # -- the request log (plinth.oversight.requests) --
        self.request_log_written = Counter("plinth_request_log_records", "Requests written to the request log", registry=r)
        self.request_log_dropped = Counter(
            "plinth_request_log_dropped",
            "Requests not written to the request log, by reason: queue_full (the writer was PLINTH_REQUEST_LOG_QUEUE "
            "entries behind), store_error (the store refused the batch after retries)",
            ["reason"],
            registry=r,
        )
        self.request_log_shed = Counter(
            "plinth_request_log_text_shed",
            "Requests logged without text and embedding because the writer's queue held PLINTH_REQUEST_LOG_QUEUE_TEXT_BYTES of text",
            registry=r,
        )
        self.request_log_queue = Gauge("plinth_request_log_queue_depth", "Requests waiting for the request log writer", registry=r)
        # -- drift (plinth.oversight.drift; per deployment, from its newest whole-deployment run) --
        self.drift_score = Gauge(
            "plinth_drift_score",
            "Headline drift score of the newest run (largest effect / its floor; 0 = like the reference)",
            ["deployment"],
            registry=r,
        )
        self.drift_detected = Gauge("plinth_drift_detected", "1 when the newest drift run found drift, else 0", ["deployment"], registry=r)
        self.drift_p_value = Gauge(
            "plinth_drift_p_value",
            "p-value of each drift method (embedding, length, language, oov, unanswerable) in the newest run",
            ["deployment", "test"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
