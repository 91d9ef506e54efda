"""The LoRA recipe's ``compile`` option (ADR 0128): off by default, ``auto`` leaves short runs eager, and the
compiled decoder layers train to the same losses as the eager ones on the tiny real model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from plinth.tuning import data as tdata
from plinth.tuning.loop import Hooks, LoopConfig, train
from plinth.tuning.recipes import recipe
from plinth.tuning.recipes.lora import COMPILE_AUTO_MIN_STEPS, should_compile
from plinth.tuning.spec import TuneSpec, parse_spec
from tests.support.tiny_hf import make_tiny_llama
from tests.unit.tuning.test_recipes import conversations


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-compile") / "model")


def _spec(**kw: Any) -> TuneSpec:
    base = {
        "base_model": "m",
        "dataset": "d@1",
        "batch_size": 4,
        "learning_rate": 2e-3,
        "warmup_steps": 0,
        "lr_scheduler": "constant",
        "precision": "bf16",
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    }
    return parse_spec({**base, **kw})


def _cfg(steps: int) -> LoopConfig:
    return LoopConfig(steps, 4, 1, 2e-3, 0.0, 0, "constant", 1.0, 1000, 1000, None, 0, "length_grouped", torch.bfloat16, "cpu")


def _compiled_layers(t: Any) -> list[bool]:
    return [getattr(layer, "_compiled_call_impl", None) is not None for layer in t.causal_lm.model.layers]


def test_the_spec_takes_compile_and_defaults_to_off() -> None:
    assert _spec().compile == "off"
    assert _spec(compile="auto").compile == "auto"
    with pytest.raises(Exception, match="compile"):
        _spec(compile="always")


def test_auto_compiles_only_long_cpu_runs() -> None:
    has_cc = any(shutil.which(c) for c in ("g++", "c++", "clang++"))
    assert not should_compile("auto", "cpu", 8)
    assert not should_compile("auto", "cpu", COMPILE_AUTO_MIN_STEPS - 1)
    assert should_compile("auto", "cpu", COMPILE_AUTO_MIN_STEPS) == has_cc
    assert not should_compile("auto", "cuda", 100_000)
    assert not should_compile("off", "cpu", 100_000)
    assert should_compile("on", "cpu", 1)


def test_a_short_auto_run_stays_eager(tiny: Path) -> None:
    t = recipe("lora").setup(tiny, _spec(compile="auto"), "cpu")
    examples, _ = tdata.encode_all(t.tokenizer, conversations(12), 128)
    res = train(t, examples, [], _cfg(2), Hooks())
    assert res.state.step == 2
    assert not t.compiled and not any(_compiled_layers(t))


def test_compiled_layers_train_to_the_eager_losses(tiny: Path, tmp_path: Path) -> None:
    """Same seed, same batches: the per-step training losses of the compiled run match the
    eager run's within bf16 tolerance, and the saved adapter has the same tensors' names."""
    examples, _ = tdata.encode_all(recipe("lora").setup(tiny, _spec(), "cpu").tokenizer, conversations(16), 128)
    losses: dict[str, list[float]] = {}
    saved: dict[str, set[str]] = {}
    for setting in ("off", "on"):
        t = recipe("lora").setup(tiny, _spec(compile=setting), "cpu")
        seen: list[float] = []
        train(t, examples, [], _cfg(4), Hooks(on_step=lambda step, m, seen=seen: seen.append(m["train/loss"])))
        assert t.compiled == (setting == "on")
        assert all(_compiled_layers(t)) == (setting == "on")
        losses[setting] = seen
        t.model.save_pretrained(str(tmp_path / setting))
        from safetensors.torch import load_file

        saved[setting] = set(load_file(str(tmp_path / setting / "adapter_model.safetensors")))
    assert len(losses["on"]) == 4
    torch.testing.assert_close(torch.tensor(losses["on"]), torch.tensor(losses["off"]), rtol=2e-2, atol=2e-2)
    assert losses["off"][-1] < losses["off"][0]  # the comparison is over steps that learn
    assert saved["on"] == saved["off"]
