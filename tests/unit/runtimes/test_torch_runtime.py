"""The real torch runtime on a tiny randomly initialised Llama (built offline by tests.support)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from plinth.domain import ModelFormat, ModelRecord
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import inspect_model
from plinth.runtimes import Delta, Prompt, RuntimeOptions, SamplingParams
from plinth.runtimes.torch_hf import TorchRuntime
from tests.support.runtime_contract import cancel_after_three_tokens
from tests.support.tiny_hf import CONTEXT_LENGTH, make_tiny_llama

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world! How are you today?"}]
CHATML = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello, world! How are you today?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-hf-runtime") / "tiny-llama")


def record_for(path: Path, name: str = "tiny") -> ModelRecord:
    info = inspect_model(path)
    assert info.format == ModelFormat.SAFETENSORS
    return ModelRecord(
        name=name,
        format=info.format,
        runtime="torch",
        digest=None,
        size_bytes=info.size_bytes,
        architecture=info.architecture,
        context_length=info.context_length,
        chat_template=info.chat_template,
        parameters=dict(info.parameters),
    )


def load(path: Path, context_length: int = 1024, batching: bool = True) -> TorchRuntime:
    # one thread: the tiny model gains nothing from more, and spinning threads collapse on busy cores
    opts = RuntimeOptions(threads=1, context_length=context_length, torch_batching=batching)
    rt = TorchRuntime(record_for(path), path, opts)
    rt.load()
    assert rt.batching == batching
    return rt


@pytest.fixture(scope="module", params=["batching", "generic"])
def runtime(tiny_dir: Path, request: pytest.FixtureRequest) -> Iterator[TorchRuntime]:
    """Every test below runs on both paths: the batching engine and transformers' modules."""
    rt = load(tiny_dir, batching=request.param == "batching")
    yield rt
    rt.unload()


@pytest.fixture(scope="module")
def prompt(runtime: TorchRuntime) -> Prompt:
    return runtime.prepare_chat(MESSAGES)


def collect(
    runtime: TorchRuntime, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
) -> tuple[str, int, str | None, list[Delta]]:
    deltas = list(runtime.generate(prompt, params, cancel or threading.Event()))
    return "".join(d.text for d in deltas), sum(d.n_tokens for d in deltas), deltas[-1].finish_reason, deltas


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0)


def with_template(src: Path, dest: Path, template: str | None) -> Path:
    """A copy of the tiny model whose tokenizer carries ``template`` (None: no template)."""
    shutil.copytree(src, dest)
    (dest / "chat_template.jinja").unlink(missing_ok=True)
    cfg_path = dest / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.pop("chat_template", None)
    if template is not None:
        cfg["chat_template"] = template
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    return dest


# -- loading -----------------------------------------------------------------------------------
def test_loads_and_reports_health(runtime: TorchRuntime) -> None:
    h = runtime.health()
    assert h.ok
    assert h.info["device"] in ("cpu", "cuda")
    assert h.info["dtype"] in ("float32", "bfloat16", "float16")
    assert h.info["path"] == ("batching" if runtime.batching else "generic")
    # capped by the model's own max_position_embeddings, below the option's 1024
    assert runtime.context_length() == CONTEXT_LENGTH == h.info["n_ctx"]


def test_context_length_is_capped_by_the_options(tiny_dir: Path) -> None:
    rt = load(tiny_dir, context_length=256)
    try:
        assert rt.context_length() == 256
    finally:
        rt.unload()
    assert not rt.health().ok
    assert rt.context_length() is None


def test_loading_without_a_directory_or_from_a_broken_one_is_runtime_unavailable(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PlinthError) as info:
        TorchRuntime(record_for(tiny_dir), None, RuntimeOptions()).load()
    assert info.value.code == ErrorCode.RUNTIME_UNAVAILABLE
    broken = Path(shutil.copytree(tiny_dir, tmp_path / "broken"))
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(PlinthError) as info:
        TorchRuntime(record_for(tiny_dir), broken, RuntimeOptions(threads=1)).load()
    assert info.value.code == ErrorCode.RUNTIME_UNAVAILABLE
    assert "'tiny'" in info.value.message


# -- prompts -----------------------------------------------------------------------------------
def test_prepare_chat_uses_the_models_chat_template(runtime: TorchRuntime, prompt: Prompt) -> None:
    assert prompt.is_chat
    assert prompt.text == CHATML
    assert prompt.token_ids and prompt.n_tokens == len(prompt.token_ids)
    tok = runtime._tok
    assert prompt.token_ids == tok(CHATML, add_special_tokens=False)["input_ids"]
    # the role markers are single special tokens, not their spelling
    assert prompt.token_ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3


def test_a_different_template_in_the_model_changes_the_prompt(tiny_dir: Path, tmp_path: Path) -> None:
    custom = with_template(
        tiny_dir, tmp_path / "custom", "{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }}\n{% endfor %}>>"
    )
    rt = load(custom)
    try:
        p = rt.prepare_chat(MESSAGES)
        assert p.text == "[SYSTEM] Be brief.\n[USER] Hello, world! How are you today?\n>>"
        assert p.n_tokens == len(p.token_ids or [])
    finally:
        rt.unload()


def test_a_model_without_a_template_gets_chatml(tiny_dir: Path, tmp_path: Path) -> None:
    bare = with_template(tiny_dir, tmp_path / "bare", None)
    rt = load(bare)
    try:
        assert not rt._tok.chat_template
        assert rt.prepare_chat(MESSAGES).text == CHATML
    finally:
        rt.unload()


def test_a_template_that_refuses_the_messages_is_an_invalid_request(tiny_dir: Path, tmp_path: Path) -> None:
    strict = with_template(
        tiny_dir,
        tmp_path / "strict",
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    )
    rt = load(strict)
    try:
        with pytest.raises(PlinthError) as info:
            rt.prepare_chat(MESSAGES)
        assert info.value.code == ErrorCode.INVALID_REQUEST
        assert "System role not supported" in info.value.message
        assert rt.prepare_chat(MESSAGES[1:]).text == MESSAGES[1]["content"]
    finally:
        rt.unload()


def test_prepare_text_and_count_tokens(runtime: TorchRuntime) -> None:
    p = runtime.prepare_text("The quick brown fox")
    assert not p.is_chat
    assert p.token_ids and p.n_tokens == len(p.token_ids)
    assert runtime.count_tokens("The quick brown fox") == len(runtime._tok("The quick brown fox", add_special_tokens=False)["input_ids"])
    assert runtime.count_tokens("") == 0


# -- generation --------------------------------------------------------------------------------
def test_greedy_decoding_is_deterministic(runtime: TorchRuntime, prompt: Prompt) -> None:
    a = collect(runtime, prompt, greedy(24))
    b = collect(runtime, prompt, greedy(24))
    assert a[0], "the tiny model produces (nonsense) text"
    assert a[:3] == b[:3]


def test_max_tokens_is_respected_with_finish_reason_length(runtime: TorchRuntime, prompt: Prompt) -> None:
    text, n, finish, deltas = collect(runtime, prompt, greedy(10))
    assert finish == "length"
    assert n == 10
    assert all(d.finish_reason is None for d in deltas[:-1])
    longer = collect(runtime, prompt, greedy(20))[0]
    assert longer.startswith(text)


def test_seeded_sampling_is_reproducible(runtime: TorchRuntime, prompt: Prompt) -> None:
    def sample(seed: int) -> str:
        return collect(runtime, prompt, SamplingParams(max_tokens=16, temperature=1.0, top_p=0.9, seed=seed))[0]

    a = sample(1234)
    assert sample(1234) == a
    assert len({a, sample(1), sample(2)}) > 1, "different seeds should give different samples"


def test_unseeded_sampling_leaves_the_global_rng_alone(runtime: TorchRuntime, prompt: Prompt) -> None:
    torch.manual_seed(42)
    expected = torch.rand(4)
    torch.manual_seed(42)
    collect(runtime, prompt, SamplingParams(max_tokens=4, temperature=1.0, seed=None))
    assert torch.equal(torch.rand(4), expected), "generation must not reseed torch's global generator"


def test_penalties_change_the_output(runtime: TorchRuntime, prompt: Prompt) -> None:
    plain = collect(runtime, prompt, greedy(24))[0]
    penalised = collect(runtime, prompt, SamplingParams(max_tokens=24, temperature=0.0, frequency_penalty=2.0, presence_penalty=2.0))[0]
    assert penalised != plain


def test_cancel_from_another_thread_stops_generation(runtime: TorchRuntime, prompt: Prompt) -> None:
    deltas, tokens = cancel_after_three_tokens(runtime, prompt, greedy(64))
    assert deltas[-1].finish_reason == "cancelled"
    # the batching engine does not wait for its consumer: on a busy machine a few more tokens
    # may already sit in the queue when the reader sets the event
    assert 3 <= tokens <= (16 if runtime.batching else 5), tokens
    assert collect(runtime, prompt, greedy(4))[2] == "length"


def test_an_empty_prompt_is_refused(runtime: TorchRuntime) -> None:
    with pytest.raises(PlinthError) as info:
        list(runtime.generate(Prompt(text="", token_ids=[]), greedy(4), threading.Event()))
    assert info.value.code == ErrorCode.INVALID_REQUEST
