"""Inference runtimes behind one interface; each backend in its own module."""

from plinth.runtimes.base import (
    AdapterRef,
    Delta,
    InferenceRuntime,
    OutputConstraint,
    Prompt,
    RuntimeHealth,
    RuntimeOptions,
    SamplingParams,
    TokenLogprob,
)
from plinth.runtimes.registry import load_runtime_class, missing_requirements, runtime_entry, runtime_names

__all__ = [
    "AdapterRef",
    "Delta",
    "InferenceRuntime",
    "OutputConstraint",
    "Prompt",
    "RuntimeHealth",
    "RuntimeOptions",
    "SamplingParams",
    "TokenLogprob",
    "load_runtime_class",
    "missing_requirements",
    "runtime_entry",
    "runtime_names",
]
