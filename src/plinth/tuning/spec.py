"""The fine-tuning job's configuration, validated before any job is created.

A ``tune`` job's spec names a base model of the catalog, a dataset version, a method
(``lora``, ``full`` or ``prompt_tuning``) and its hyperparameters. :func:`validate` checks
all of it against the store (the model and the dataset exist, the model can be trained, the
target modules exist in its architecture, the sequence length fits its context window) and
against common sense (a learning rate in (0, 1], a rank the hidden size allows...) and
reports every problem at once, each naming its field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plinth.errors import ErrorCode, PlinthError

Method = Literal["lora", "full", "prompt_tuning"]

LLAMA_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank: int = Field(8, ge=1, le=256, description="LoRA rank r")
    alpha: float = Field(16.0, gt=0, le=4096, description="LoRA alpha (the update is scaled by alpha / rank)")
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class PromptTuningSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_virtual_tokens: int = Field(16, ge=1, le=512)
    init_text: str | None = Field(
        "You are the Acme Health member assistant. Answer questions about coverage, claims and benefits.",
        max_length=2000,
        description="initialise the virtual tokens from the embeddings of this text (None: random)",
    )


class RagDatasetSpec(BaseModel):
    """Train on retrieval-augmented examples built from ``dataset`` and a knowledge base
    (:mod:`plinth.tuning.rag_dataset`); the built version is what the job trains on."""

    model_config = ConfigDict(extra="forbid")
    knowledge_base: str = Field(min_length=1, max_length=160, description="NAME or NAME@VERSION (pinned when the job is submitted)")
    unanswerable_share: float = Field(0.2, ge=0.0, le=0.5, description="share of pairs taught to refuse (their answer's passages withheld)")
    distractors: int = Field(2, ge=0, le=8, description="passages retrieved for other questions added to each answerable prompt")
    passages: int = Field(3, ge=1, le=10, description="passages retrieved per question (the serving path's top k)")
    name: str | None = Field(None, max_length=128, description="the built dataset's name (default: <dataset>-rag)")
    refusal: str | None = Field(None, min_length=1, max_length=500, description="the target of unanswerable examples")


class TuneSpec(BaseModel):
    """What ``plinth tune`` / ``POST /api/v1/tuning/jobs`` accepts."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    base_model: str = Field(min_length=1, max_length=256)
    dataset: str = Field(min_length=1, max_length=200, description="name or name@version")
    method: Method = "lora"
    name: str | None = Field(None, max_length=128, description="registered model name (default: the dataset's name)")
    register: bool = Field(True, description="register the result in the model registry (served at once)")
    max_steps: int | None = Field(None, ge=1, le=1_000_000, description="optimizer steps (default: epochs over the data)")
    epochs: float = Field(3.0, gt=0, le=1000)
    batch_size: int = Field(4, ge=1, le=512)
    grad_accum: int = Field(1, ge=1, le=1024)
    learning_rate: float = Field(2e-4, gt=0, le=1.0)
    weight_decay: float = Field(0.0, ge=0, le=1.0)
    warmup_steps: int = Field(10, ge=0, le=100_000)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float = Field(1.0, gt=0, le=1e6)
    max_seq_len: int = Field(512, ge=16, le=131_072)
    batching: Literal["length_grouped", "shuffled"] = Field(
        "length_grouped", description="length_grouped: batches of similar lengths, padded to the longest (little padding)"
    )
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 autocast where the CPU/GPU supports it")
    compile: Literal["off", "auto", "on"] = Field(
        "off",
        description=(
            "compile the decoder layers with torch.compile (LoRA; once, shared by every layer): auto does it only on a CPU "
            "with a C compiler and for runs of at least 1000 optimizer steps; off by default until a steady-state gain is "
            "measured (ADR 0128)"
        ),
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)
    eval_every: int = Field(25, ge=1, le=1_000_000, description="validation loss every N optimizer steps")
    checkpoint_every: int = Field(25, ge=1, le=1_000_000)
    early_stopping_patience: int | None = Field(
        3, ge=1, le=1000, description="stop after this many evaluations without a better validation loss (None: never)"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    prompt_tuning: PromptTuningSpec = Field(default_factory=PromptTuningSpec)
    rag_dataset: RagDatasetSpec | None = Field(
        None, description="build retrieval-augmented examples from the dataset and a knowledge base, and train on them"
    )

    @model_validator(mode="after")
    def _method_fields(self) -> TuneSpec:
        bad = [m for m in self.lora.target_modules if m not in LLAMA_LINEAR_MODULES]
        if bad:
            raise ValueError(f"unknown target modules {bad}; the llama-family models have {', '.join(LLAMA_LINEAR_MODULES)}")
        if len(set(self.lora.target_modules)) != len(self.lora.target_modules):
            raise ValueError("target_modules lists a module twice")
        return self


def parse_spec(raw: dict[str, Any]) -> TuneSpec:
    """Validate the shape of a spec; every problem is reported at once with its field."""
    try:
        return TuneSpec.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        first = e.errors()[0]["loc"] if e.errors() else ()
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "invalid tuning spec: " + "; ".join(problems),
            param="spec." + ".".join(str(p) for p in first) if first else "spec",
            details={"problems": problems},
        ) from None


def check_against(spec: TuneSpec, *, model: Any, dataset_version: Any, hidden_size: int | None, context_length: int | None) -> None:
    """The checks that need the catalog and the dataset: raise one error listing them all."""
    problems: list[tuple[str, str]] = []
    if model.format.value == "remote":
        problems.append(("base_model", f"model {model.name!r} is served by a remote engine and cannot be fine-tuned here"))
    arch = (model.architecture or "").lower()
    if arch and arch not in ("llama", "mistral", "qwen2", "llamaforcausallm", "mistralforcausallm", "qwen2forcausallm"):
        problems.append(
            ("base_model", f"model {model.name!r} has architecture {model.architecture!r}; the recipes train llama-family models")
        )
    if hidden_size and spec.method == "lora" and spec.lora.rank > hidden_size:
        problems.append(("lora.rank", f"rank {spec.lora.rank} is larger than the model's hidden size {hidden_size}"))
    if context_length and spec.max_seq_len > context_length:
        problems.append(("max_seq_len", f"max_seq_len {spec.max_seq_len} is over the model's context window of {context_length}"))
    if dataset_version.train_rows < 1:
        problems.append(("dataset", f"dataset {dataset_version.ref} has no training rows"))
    if spec.early_stopping_patience is not None and dataset_version.validation_rows < 1:
        problems.append(
            ("early_stopping_patience", f"dataset {dataset_version.ref} has no validation rows; set early_stopping_patience to null")
        )
    if spec.batch_size > dataset_version.train_rows:
        problems.append(("batch_size", f"batch_size {spec.batch_size} is larger than the {dataset_version.train_rows} training rows"))
    if problems:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "invalid tuning spec: " + "; ".join(f"{p}: {m}" for p, m in problems),
            param="spec." + problems[0][0],
            details={"problems": [f"{p}: {m}" for p, m in problems]},
        )
