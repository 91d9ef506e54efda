"""The job kinds of fine-tuning: ``tune``, ``eval``, ``assistant-eval`` and ``export``.

They reach the job queue through the ``plinth.executors`` entry-point group (pyproject.toml),
the extension point a third-party package uses too, so :mod:`plinth.jobs` names no module of
``tuning``. The targets are strings: nothing here imports torch or the executors.
"""

from __future__ import annotations

from plinth.domain.jobs import Resources
from plinth.jobs.executors import ExecutorEntry

EXECUTORS: tuple[ExecutorEntry, ...] = (
    ExecutorEntry(
        "tune",
        run="plinth.tuning.executor:run",
        validate="plinth.tuning.executor:validate",
        description="Fine-tune a catalog model on a dataset version (LoRA, full, prompt tuning); tracked as a run, "
        "registered in the model registry.",
        default_resources=Resources(cpu=2, memory=4 << 30, gpus=0),
    ),
    ExecutorEntry(
        "eval",
        run="plinth.tuning.eval_executor:run",
        validate="plinth.tuning.eval_executor:validate",
        description="Evaluate a served model id on a dataset version: loss, perplexity, exact match, token F1, ROUGE-L.",
        default_resources=Resources(cpu=2, memory=3 << 30, gpus=0),
    ),
    ExecutorEntry(
        "assistant-eval",
        run="plinth.tuning.assistant_eval_executor:run",
        validate="plinth.tuning.assistant_eval_executor:validate",
        description="The assistant evaluation suite on a model id or a deployment, through the serving path: answer, citation "
        "and refusal accuracy, off-topic declines, groundedness, PII leaks.",
        default_resources=Resources(cpu=2, memory=3 << 30, gpus=0),
    ),
    ExecutorEntry(
        "export",
        run="plinth.tuning.export:run",
        validate="plinth.tuning.export:validate",
        description="Export a fine-tune as merged safetensors, GGUF (f16, q8_0, q4_k_m) or a runtime LoRA GGUF, "
        "added to the catalog and evaluated as served.",
        default_resources=Resources(cpu=2, memory=4 << 30, gpus=0),
    ),
)
