"""The fine-tuning data path and recipes on real models: chat encoding with the model's own
template (loss on assistant tokens only), length-grouped batches, LoRA on the embedded model
(the loss goes down in a few steps), exact resume from a checkpoint, full fine-tuning and
prompt tuning, and the spec's validation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from plinth.errors import ErrorCode, PlinthError
from plinth.tuning import data as tdata
from plinth.tuning.loop import Hooks, LoopConfig, evaluate, train
from plinth.tuning.recipes import recipe
from plinth.tuning.spec import TuneSpec, check_against, parse_spec
from tests.support.tiny_hf import make_tiny_llama

FAQ = [
    ("What is the Silver plan deductible?", "The Silver plan deductible is $2,000 per person per year."),
    ("Does Gold cover acupuncture?", "Gold covers up to 12 acupuncture visits a year with a $20 copay."),
    ("How do I appeal a denied claim?", "Send the appeal form within 180 days of the denial letter."),
    ("Is prior authorisation needed for an MRI?", "Yes: in-network MRIs need prior authorisation on every plan."),
    ("What is the Bronze out-of-pocket maximum?", "The Bronze out-of-pocket maximum is $8,700 per person."),
    ("Are generic drugs covered on Silver?", "Tier 1 generics cost $10 for a 30-day supply on Silver."),
]


def conversations(n: int = 24) -> list[list[dict[str, Any]]]:
    out = []
    for i in range(n):
        q, a = FAQ[i % len(FAQ)]
        conv = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if i % 3 == 0:
            conv.insert(0, {"role": "system", "content": "You are the Acme Health member assistant."})
        out.append(conv)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-tune") / "model")


def _tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def _spec(**kw: Any) -> TuneSpec:
    base = {"base_model": "m", "dataset": "d@1", "batch_size": 4, "learning_rate": 2e-3, "warmup_steps": 0, "lr_scheduler": "constant"}
    return parse_spec({**base, **kw})


def _cfg(spec: TuneSpec, steps: int, **kw: Any) -> LoopConfig:
    base = dict(
        total_steps=steps,
        batch_size=spec.batch_size,
        grad_accum=spec.grad_accum,
        learning_rate=spec.learning_rate,
        weight_decay=spec.weight_decay,
        warmup_steps=spec.warmup_steps,
        lr_scheduler=spec.lr_scheduler,
        max_grad_norm=1.0,
        eval_every=1000,
        checkpoint_every=1000,
        early_stopping_patience=None,
        seed=spec.seed,
        batching=spec.batching,
        autocast_dtype=None,
        device="cpu",
    )
    return LoopConfig(**{**base, **kw})


# -- data -------------------------------------------------------------------------------------
def test_only_assistant_tokens_are_labelled(smol_dir: Path) -> None:
    tok = _tokenizer(smol_dir)
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the deductible?"},
        {"role": "assistant", "content": "It is $2,000."},
        {"role": "user", "content": "And the copay?"},
        {"role": "assistant", "content": "A $30 copay."},
    ]
    ex = tdata.encode_chat(tok, conv, max_len=512)
    assert ex is not None
    labelled = tok.decode([t for t in ex.labels if t != tdata.IGNORE])
    assert "It is $2,000." in labelled and "A $30 copay." in labelled
    for text in ("Be brief", "deductible", "copay?", "user"):
        assert text not in labelled
    assert labelled.count("<|im_end|>") == 2  # the model learns to end its turns
    # the labels are exactly the input ids where they are set
    assert all(lab in (tdata.IGNORE, i) for i, lab in zip(ex.input_ids, ex.labels, strict=True))
    full = tok.apply_chat_template(conv, tokenize=False)
    assert tok.decode(ex.input_ids) == full


def test_weight_zero_and_truncation(smol_dir: Path) -> None:
    tok = _tokenizer(smol_dir)
    conv = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?", "weight": 0},
        {"role": "user", "content": "Deductible?"},
        {"role": "assistant", "content": "It is $2,000."},
    ]
    ex = tdata.encode_chat(tok, conv, max_len=512)
    assert ex is not None
    labelled = tok.decode([t for t in ex.labels if t != tdata.IGNORE])
    assert "Hello" not in labelled and "$2,000" in labelled
    assert tdata.encode_chat(tok, conv, max_len=8) is None  # nothing to learn inside 8 tokens
    examples, dropped = tdata.encode_all(tok, [conv, conv], max_len=8)
    assert examples == [] and dropped == 2


def test_length_grouped_batches_waste_less_padding(smol_dir: Path) -> None:
    tok = _tokenizer(smol_dir)
    convs = [
        [{"role": "user", "content": "q " * (1 + (i * 37) % 60)}, {"role": "assistant", "content": "a " * (1 + (i * 11) % 40)}]
        for i in range(64)
    ]
    examples, _ = tdata.encode_all(tok, convs, 512)

    def padding(mode: str) -> float:
        real = padded = 0
        for idx in tdata.batches(examples, 4, seed=0, epoch=0, mode=mode):
            width = max(len(examples[i].input_ids) for i in idx)
            real += sum(len(examples[i].input_ids) for i in idx)
            padded += width * len(idx)
        return 1 - real / padded

    assert padding("length_grouped") < padding("shuffled") / 3
    # deterministic, and every example once per epoch
    a = tdata.batches(examples, 4, seed=3, epoch=1)
    assert a == tdata.batches(examples, 4, seed=3, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(len(examples)))


# -- recipes ----------------------------------------------------------------------------------
def test_lora_loss_goes_down_on_the_embedded_model(smol32_dir: Path) -> None:
    base = smol32_dir
    spec = _spec(lora={"rank": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    t = recipe("lora").setup(base, spec, "cpu")
    assert t.trainable_count() == 460_800  # r=8 on q and v of 30 layers (as in the measured notes)
    examples, _ = tdata.encode_all(t.tokenizer, conversations(12), 256)
    autocast = torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    cfg = _cfg(spec, steps=8, autocast_dtype=autocast)
    before = evaluate(t, examples, cfg)["loss"]
    result = train(t, examples, [], cfg, Hooks())
    after = evaluate(t, examples, cfg)["loss"]
    assert result.state.step == 8 and result.state.real_tokens > 0
    assert after < before - 0.5, (before, after)


def _params(t: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in t.parameters()}


def test_a_preempted_run_resumes_exactly(tiny: Path, tmp_path: Path) -> None:
    spec = _spec(lora={"rank": 4, "alpha": 8, "dropout": 0.2, "target_modules": ["q_proj", "v_proj"]})
    steps = 6

    def fresh() -> Any:
        t = recipe("lora").setup(tiny, spec, "cpu")
        return t, tdata.encode_all(t.tokenizer, conversations(20), 128)[0]

    t1, ex = fresh()
    train(t1, ex, [], _cfg(spec, steps), Hooks())
    straight = _params(t1)

    t2, ex = fresh()
    calls = {"n": 0}

    def stop_after_three() -> str | None:
        calls["n"] += 1
        return "preempt" if calls["n"] == 4 else None

    ckpt = tmp_path / "ckpt"
    first = train(t2, ex, [], _cfg(spec, steps, checkpoint_every=2), Hooks(should_stop=stop_after_three, checkpoint_dir=ckpt))
    assert first.stopped == "preempt" and first.state.step == 3
    t3, ex = fresh()  # a new process: nothing carried over but the checkpoint
    second = train(t3, ex, [], _cfg(spec, steps), Hooks(checkpoint_dir=ckpt))
    assert second.stopped is None and second.state.step == steps
    resumed = _params(t3)
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["full", "prompt_tuning"])
def test_full_and_prompt_tuning_learn(method: str, tiny: Path, tmp_path: Path) -> None:
    spec = _spec(
        method=method, learning_rate=5e-3 if method == "full" else 5e-2, prompt_tuning={"num_virtual_tokens": 4, "init_text": "Acme Health"}
    )
    t = recipe(method).setup(tiny, spec, "cpu")
    examples, _ = tdata.encode_all(t.tokenizer, conversations(12), 128)
    cfg = _cfg(spec, steps=10)
    before = evaluate(t, examples, cfg)["loss"]
    train(t, examples, [], cfg, Hooks())
    after = evaluate(t, examples, cfg)["loss"]
    assert after < before, (before, after)
    kind = recipe(method).save(t, tmp_path / "out", spec, tiny)
    if method == "full":
        assert kind == "model" and (tmp_path / "out" / "config.json").is_file()
        assert not any(f.suffix in (".bin", ".pt") for f in (tmp_path / "out").iterdir())
    else:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        assert kind == "adapter"
        loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny)), str(tmp_path / "out"))
        assert loaded.peft_config["default"].num_virtual_tokens == 4


def test_validation_errors_are_clear_and_all_at_once() -> None:
    with pytest.raises(PlinthError) as e:
        parse_spec({"base_model": "m", "dataset": "d", "learning_rate": 0, "lora": {"rank": 0, "target_modules": ["nope"]}, "bogus": 1})
    err = e.value
    assert err.code == ErrorCode.INVALID_REQUEST
    text = err.message
    for part in ("learning_rate", "lora.rank", "bogus"):
        assert part in text
    assert len(err.details["problems"]) >= 3
    spec = _spec(max_seq_len=9000, batch_size=64, lora={"rank": 200})
    model = SimpleNamespace(name="m", format=SimpleNamespace(value="gguf"), architecture="llama")
    version = SimpleNamespace(ref="d@1", train_rows=10, validation_rows=0)
    with pytest.raises(PlinthError) as e:
        check_against(spec, model=model, dataset_version=version, hidden_size=128, context_length=8192)
    msg = e.value.message
    assert "rank 200 is larger than the model's hidden size 128" in msg
    assert "max_seq_len 9000" in msg and "batch_size 64" in msg and "no validation rows" in msg


def test_lora_in_bf16_stores_frozen_weights_once_with_the_same_loss(tiny: Path) -> None:
    """In bf16 the frozen decoder weights are stored in bf16 (what autocast computed with
    anyway), the trainable LoRA matrices stay float32, and a batch's loss is what float32
    weights under bf16 autocast give (ADR 0124)."""
    bf16 = recipe("lora").setup(tiny, _spec(precision="bf16"), "cpu")
    fp32 = recipe("lora").setup(tiny, _spec(precision="fp32"), "cpu")
    frozen = [m.weight for m in bf16.causal_lm.model.modules() if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad]
    assert frozen and all(w.dtype == torch.bfloat16 for w in frozen)
    assert all(p.dtype == torch.float32 for _, p in bf16.parameters())
    assert all(p.dtype == torch.float32 for p in fp32.model.parameters())
    with torch.no_grad():  # the same non-zero LoRA matrices in both, so only the storage differs
        for (_, a), (_, b) in zip(bf16.parameters(), fp32.parameters(), strict=True):
            b.add_(0.01)
            a.copy_(b)
    examples, _ = tdata.encode_all(bf16.tokenizer, conversations(4), 128)
    batch = tdata.collate(examples, bf16.pad_id)
    bf16.model.eval()
    fp32.model.eval()
    with torch.no_grad():
        s1, n1 = bf16.loss(batch)  # enters autocast itself
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s2, n2 = fp32.loss(batch)
    assert n1 == n2 > 0
    torch.testing.assert_close(s1 / n1, s2 / n2, atol=2e-2, rtol=1e-2)


def test_lora_in_bf16_keeps_a_bf16_residual_stream_with_about_the_same_loss(tiny: Path) -> None:
    """With bf16_residual the embeddings and norm weights are stored in bf16 too, so the residual stream is
    bf16 and no linear casts its input, and the norms run torch's fused rms_norm; the LoRA
    matrices stay float32 and get float32 gradients, and a batch's loss is close to the one
    with a float32 residual stream and the model's own norms (ADR 0124)."""
    from plinth.tuning.recipes.lora import LoraTrainable

    new = LoraTrainable(tiny, _spec(precision="bf16"), "cpu", bf16_residual=True, fused_norm=True)
    old = LoraTrainable(tiny, _spec(precision="bf16"), "cpu")  # the default: float32 residual stream, the model's norms
    assert new.causal_lm.model.embed_tokens.weight.dtype == torch.bfloat16
    assert new.causal_lm.model.norm.weight.dtype == torch.bfloat16
    assert old.causal_lm.model.norm.weight.dtype == torch.float32
    with torch.no_grad():
        for (_, a), (_, b) in zip(new.parameters(), old.parameters(), strict=True):
            b.add_(0.01)
            a.copy_(b)
    examples, _ = tdata.encode_all(new.tokenizer, conversations(4), 128)
    batch = tdata.collate(examples, new.pad_id)
    new.model.eval()
    old.model.eval()
    s1, n1 = new.loss(batch)
    with torch.no_grad():
        s2, n2 = old.loss(batch)
    assert n1 == n2 > 0
    torch.testing.assert_close(s1 / n1, s2 / n2, atol=5e-2, rtol=2e-2)
    (s1 / n1).backward()
    grads = [p.grad for _, p in new.parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)
