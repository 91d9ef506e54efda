"""Where a LoRA step's time goes: shares of self CPU time by kind of op (torch.profiler) for
plinth's LoRA step now, the same step with float32 frozen weights cast by autocast (before ADR
0124), and the step Trainer + PEFT runs (PEFT model, loss over the full vocabulary, bf16
autocast, fused AdamW), on the same batches, after one warm-up pass over them, measured
alternately in one process. Writes the markdown table to /tmp/tuning-profile.md, which
``bench/tuning.py --notes`` appends to its results.

Run:  .venv/bin/python bench/tuning_profile.py [N batches, default 3]
"""

# ruff: noqa: E402, E501

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

torch.set_num_threads(os.cpu_count() or 2)
from plinth.formats import locate_embedded_gguf
from plinth.runtimes.torch_gguf import dequantised_dir

base = dequantised_dir(locate_embedded_gguf(), ROOT / "bench" / ".work" / "torch", dtype_name="float32")
import tuning as B
from torch.profiler import ProfilerActivity, profile

from plinth.tuning.data import batches, collate
from plinth.tuning.recipes import recipe
from plinth.tuning.spec import parse_spec

spec = parse_spec(
    {
        "base_model": "x",
        "dataset": "x",
        "learning_rate": 2e-4,
        "batch_size": 4,
        "warmup_steps": 5,
        "seed": 0,
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.05},
    }
)
t = recipe("lora").setup(base, spec, "cpu")
spec_old = parse_spec(
    {
        "base_model": "x",
        "dataset": "x",
        "learning_rate": 2e-4,
        "batch_size": 4,
        "warmup_steps": 5,
        "seed": 0,
        "precision": "fp32",
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.05},
    }
)
t_old = recipe("lora").setup(base, spec_old, "cpu")
t_old.model.train()
tr, va = B.load_data(t.tokenizer, 512)
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

pm = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
pm = get_peft_model(pm, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
pm.train()
t.model.train()
N = int(sys.argv[1]) if len(sys.argv) > 1 else 3
idx = batches(tr, 4, seed=0, epoch=0)[:N]
bs = [collate([tr[i] for i in ix], t.pad_id) for ix in idx]
optp = torch.optim.AdamW([p for _, p in t.parameters()], lr=1e-4, fused=True)
optq = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4, fused=True)


def step_plinth(b):
    s, k = t.loss(b)
    (s / k).backward()
    torch.nn.utils.clip_grad_norm_([p for _, p in t.parameters()], 1.0)
    optp.step()
    optp.zero_grad()


opto = torch.optim.AdamW([p for _, p in t_old.parameters()], lr=1e-4, foreach=True)


def step_old(b):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s, k = t_old.loss(b)
    (s / k).backward()
    torch.nn.utils.clip_grad_norm_([p for _, p in t_old.parameters()], 1.0)
    opto.step()
    opto.zero_grad()


def step_peer(b):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pm(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in pm.parameters() if p.requires_grad], 1.0)
    optq.step()
    optq.zero_grad()


for b in bs:
    step_plinth(b)
    step_peer(b)
    step_old(b)  # warm-up: oneDNN kernels for these shapes


def kind(name):
    n = name.lower()
    if "optim" in n or "adam" in n or "clip" in n or ("norm_" in n and "foreach" in n) or "_foreach" in n:
        return "optimizer + clipping"
    if "attention" in n or "sdpa" in n or "flash" in n:
        return "attention (SDPA)"
    if n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear") or "mkldnn" in n:
        return "matmuls (linear layers, head)"
    if n in ("aten::_to_copy", "aten::copy_", "aten::to", "aten::clone", "aten::contiguous"):
        return "casts and copies"
    if "softmax" in n or "nll" in n or "cross_entropy" in n or "logsumexp" in n:
        return "softmax / cross-entropy"
    if "dropout" in n or "bernoulli" in n:
        return "dropout"
    return "other ops (norms, activations, rotary, masks, glue)"


rows = {}
tot = {}
tokens = sum(int(b["attention_mask"].sum()) for b in bs)
for rep in range(2):
    for name, fn in (
        (("plinth", step_plinth), ("old", step_old), ("peer", step_peer))
        if rep == 0
        else (("peer", step_peer), ("old", step_old), ("plinth", step_plinth))
    ):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for b in bs:
                fn(b)
            w = time.perf_counter() - t0
        tot.setdefault(name, []).append(w)
        if rep == 0:
            agg = {}
            for e in prof.key_averages():
                agg[kind(e.key)] = agg.get(kind(e.key), 0.0) + e.self_cpu_time_total
            rows[name] = agg
print("wall s", tot, "tokens", tokens)
kinds = sorted(set(rows["plinth"]) | set(rows["peer"]), key=lambda k: -rows["peer"].get(k, 0))
sp = sum(rows["plinth"].values())
sq = sum(rows["peer"].values())
so = sum(rows["old"].values())
out = [
    "## Where the time goes",
    "",
    f"torch.profiler, self CPU time by kind of op over the same {N} batches ({tokens} real tokens) for each, after one warm-up pass over them, the two measured alternately in one process (bench/tuning_profile.py). Times are shares of each engine's own total, then that total relative to the peer's, since this machine is shared and loaded.",
    "",
    "| kind of op | plinth LoRA (now) | plinth LoRA (before: fp32 weights cast by autocast) | Trainer + PEFT (bf16, fused AdamW) |",
    "|---|---|---|---|",
]
for k in kinds:
    out.append(
        f"| {k} | {100 * rows['plinth'].get(k, 0) / sp:.0f}% | {100 * rows['old'].get(k, 0) / so:.0f}% | {100 * rows['peer'].get(k, 0) / sq:.0f}% |"
    )
out.append(f"| total self CPU time (peer = 1.00) | {sp / sq:.2f} | {so / sq:.2f} | 1.00 |")
mp = min(tot["plinth"])
mq = min(tot["peer"])
mo = min(tot["old"])
out += [
    "",
    f"Wall time for these steps (best of 2, alternated): plinth now {mp:.2f} s, before {mo:.2f} s, peer {mq:.2f} s: now {mq / mp:.2f}x the peer, before {mq / mo:.2f}x.",
]
Path("/tmp/tuning-profile.md").write_text("\n".join(out) + "\n")
print("\n".join(out))
