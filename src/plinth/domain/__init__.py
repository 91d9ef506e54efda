"""Plain domain objects: dataclasses and enums, no I/O, no imports of other plinth layers."""

from plinth.domain.models import (
    MODEL_NAME_RE,
    AdapterFormat,
    AdapterInfo,
    AdapterRecord,
    ModelFormat,
    ModelInfo,
    ModelRecord,
)

__all__ = [
    "MODEL_NAME_RE",
    "AdapterFormat",
    "AdapterInfo",
    "AdapterRecord",
    "ModelFormat",
    "ModelInfo",
    "ModelRecord",
]
