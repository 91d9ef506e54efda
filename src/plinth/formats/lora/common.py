"""What the LoRA modules share: the PEFT file names, the HF -> llama.cpp module names, the
errors they raise."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeGuard

from plinth.errors import ErrorCode, PlinthError

__all__ = ["HF_TO_GGUF_MODULES", "PEFT_CONFIG", "PEFT_WEIGHTS"]

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"

# HF llama module (PEFT target) -> llama.cpp tensor name inside ``blk.N``.
HF_TO_GGUF_MODULES: dict[str, str] = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}


# --------------------------------------------------------------------------- errors


def _invalid(path: Path, what: str, **details: Any) -> PlinthError:
    return PlinthError(ErrorCode.INVALID_MODEL_FILE, f"{path}: {what}", details={"path": str(path), **details})


def _unsupported_format(path: Path, what: str, **details: Any) -> PlinthError:
    return PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{path}: {what}", details={"path": str(path), **details})


def _pickle_refused(path: Path, what: str) -> PlinthError:
    from plinth.formats import _pickle_refused as refused

    return refused(
        path,
        what,
        "save the adapter with safetensors (PEFT: save_pretrained(..., safe_serialization=True), "
        "the default) or convert it to a llama.cpp LoRA GGUF",
    )


def _not_an_adapter(path: Path, why: str) -> PlinthError:
    return PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"{path} is a model, not an adapter ({why}); register it as a model, or give a LoRA adapter "
        "(a llama.cpp LoRA GGUF or a PEFT directory with adapter_config.json)",
        details={"path": str(path), "reason": "not_an_adapter"},
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
