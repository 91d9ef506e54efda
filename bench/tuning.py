"""Fine-tuning benchmark: plinth's LoRA recipe against a plain transformers Trainer + PEFT run.

Same model (the embedded SmolLM2-135M-Instruct, dequantised from its GGUF to float32), same
data (the Acme Health FAQ under examples/, the same chat-template encoding with the loss on
assistant tokens only, the same train/validation split), same LoRA (r=8, alpha=16, dropout
0.05 on q_proj and v_proj), same optimizer steps, batch size, learning rate and schedule.

Engines (each in a fresh process, so none inherits another's warmed oneDNN kernels or allocator):
  - plinth: the recipe and loop a ``tune`` job runs (bf16 where the CPU computes it, with the
    frozen weights stored in bf16 once, length-grouped batches, the output head only on
    labelled tokens, fused AdamW), with compile=off (eager);
  - plinth compiled: the same with compile=on (the decoder layer compiled once by
    torch.compile, ADR 0128); its first compiled run in a benchmark starts from an empty
    inductor cache (cold), later ones reuse the on-disk cache (warm). Its row gives the
    end-to-end rate (compile included) and the steady-state rate (steps after the first);
  - transformers Trainer + PEFT, best configured: bf16=True where the CPU computes bf16,
    group_by_length, optim="adamw_torch_fused", no dataloader workers and no pinned memory
    (workers only compete for the same cores on CPU), torch_compile off (on CPU it compiles
    again for every new batch shape); this is the peer the target is measured against;
  - the same Trainer with its defaults (fp32, shuffled batches padded to the longest), for
    reference (skip it with --no-defaults).
With --repeat N, plinth and the best-configured peer run alternately N times each (A B A B)
and the table shows each engine's median run, which is the fair comparison on a shared,
loaded machine; the load average is recorded with every run.
Reported: real (non-padding) tokens per second of training, padding share, wall time, and
the validation loss of each final model measured the same way (token-weighted cross-entropy
on the assistant tokens of the validation split).

Run:  make bench-tuning     (or .venv/bin/python bench/tuning.py [--steps 60] [--quick] [--results-dir DIR])
Writes bench/results/tuning-<cpu>.md and .json, <cpu> being this CPU's slug from bench/machine.py
(e.g. tuning-amd-epyc-avx2.md), and the index bench/results/README.md. --quick runs 3 steps and
writes nothing unless --results-dir is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from machine import add_results_args, describe, machine_line, results_dir_of, title, write_results

ROOT = Path(__file__).resolve().parent.parent
FAQ = ROOT / "examples" / "acme-health" / "faq.jsonl"
sys.path.insert(0, str(ROOT / "src"))


def load_data(tokenizer: Any, max_len: int, seed: int = 0) -> tuple[list[Any], list[Any]]:
    from plinth.tuning.data import encode_all

    rows = [json.loads(line)["messages"] for line in FAQ.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    idx = list(range(len(rows)))
    rng.shuffle(idx)
    n_val = max(1, len(rows) // 10)
    val = [rows[i] for i in idx[:n_val]]
    train = [rows[i] for i in idx[n_val:]]
    return encode_all(tokenizer, train, max_len)[0], encode_all(tokenizer, val, max_len)[0]


def val_loss(trainable: Any, examples: list[Any], autocast: Any) -> float:
    from plinth.tuning.loop import LoopConfig, evaluate

    cfg = LoopConfig(1, 8, 1, 0.0, 0.0, 0, "constant", 1.0, 1, 1, None, 0, "length_grouped", autocast, "cpu")
    return evaluate(trainable, examples, cfg)["loss"]


def run_plinth(base: Path, args: argparse.Namespace, autocast: Any, compile_: str = "off") -> dict[str, Any]:
    import torch

    from plinth.tuning.loop import Hooks, LoopConfig, train
    from plinth.tuning.recipes import recipe
    from plinth.tuning.spec import parse_spec

    spec = parse_spec(
        {
            "base_model": "x",
            "dataset": "x",
            "learning_rate": args.lr,
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup,
            "seed": 0,
            "compile": compile_,
            "lora": {"rank": 8, "alpha": 16, "dropout": 0.05},
        }
    )
    torch.manual_seed(0)
    t = recipe("lora").setup(base, spec, "cpu")
    train_ex, val_ex = load_data(t.tokenizer, spec.max_seq_len)
    cfg = LoopConfig(
        args.steps, args.batch_size, 1, args.lr, 0.0, args.warmup, "cosine", 1.0, 10**9, 10**9, None, 0, "length_grouped", autocast, "cpu"
    )
    steps: list[tuple[int, float]] = []  # (real tokens, wall seconds) of each optimizer step
    seen = [0]

    def count(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if module.training:
            seen[0] += int(kwargs["attention_mask"].sum())

    def on_step(step: int, m: dict[str, float]) -> None:
        now = time.perf_counter()
        steps.append((seen[0], now - marks[-1]))
        seen[0] = 0
        marks.append(now)

    t.causal_lm.model.register_forward_pre_hook(count, with_kwargs=True)
    t0 = time.perf_counter()
    marks = [t0]
    res = train(t, train_ex, [], cfg, Hooks(on_step=on_step))
    wall = time.perf_counter() - t0
    st = res.state
    # steady state: the steps after the first (which compiles, and meets oneDNN's first kernels)
    tail_tokens = sum(n for n, _ in steps[1:])
    tail_secs = sum(secs for _, secs in steps[1:])
    return {
        "engine": "plinth LoRA recipe" + (", compiled" if compile_ == "on" else ""),
        "compile": compile_,
        "first_step_seconds": steps[0][1] if steps else None,
        "steady_tokens_per_s": tail_tokens / tail_secs if tail_secs else None,
        "precision": "bf16 autocast" if autocast else "fp32",
        "batching": "length-grouped",
        "steps": st.step,
        "real_tokens": st.real_tokens,
        "padded_tokens": st.padded_tokens,
        "train_seconds": wall,
        "tokens_per_s": st.real_tokens / wall,
        "padding": 1 - st.real_tokens / st.padded_tokens,
        "final_train_loss": st.last_train_loss,
        "val_loss": val_loss(t, val_ex, autocast),
    }


def run_trainer(base: Path, args: argparse.Namespace, *, bf16: bool, group_by_length: bool, best: bool) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    train_ex, val_ex = load_data(tok, 512)
    records = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels} for e in train_ex]

    class Counter(TrainerCallback):
        real = 0
        padded = 0

    seen = Counter()
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)

    def count(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        # tokens of the batches the model trains on (the data loader collates one batch ahead)
        if module.training and kwargs.get("attention_mask") is not None:
            seen.real += int(kwargs["attention_mask"].sum())
            seen.padded += int(kwargs["attention_mask"].numel())

    model.register_forward_pre_hook(count, with_kwargs=True)

    out = ROOT / "bench" / ".work" / "trainer"
    targs = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        bf16=bf16,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        seed=0,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
        **({"optim": "adamw_torch_fused", "dataloader_pin_memory": False, "torch_compile": False} if best else {}),
    )
    trainer = Trainer(model=model, args=targs, train_dataset=records, data_collator=collator)
    t0 = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - t0

    class Wrap:  # the same validation loss as for plinth
        def __init__(self) -> None:
            self.model = model
            self.pad_id = tok.pad_token_id or 0
            self.causal = model.base_model.model

        def loss(self, batch: dict[str, Any]) -> tuple[Any, int]:
            from plinth.tuning.recipes.common import labelled_loss

            h = self.causal.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            return labelled_loss(self.causal, h, batch["labels"])

    switches = [s for s, on in (("bf16", bf16), ("group_by_length", group_by_length), ("fused AdamW", best)) if on]
    name = "transformers Trainer + PEFT" + (f" ({', '.join(switches)})" if switches else " (defaults)")
    return {
        "engine": name,
        "precision": "bf16 autocast" if bf16 else "fp32",
        "batching": "group_by_length sampler" if group_by_length else "shuffled, pad to longest",
        "steps": args.steps,
        "real_tokens": seen.real,
        "padded_tokens": seen.padded,
        "train_seconds": wall,
        "tokens_per_s": seen.real / wall,
        "padding": 1 - seen.real / max(1, seen.padded),
        "final_train_loss": float(result.training_loss),
        "val_loss": val_loss(Wrap(), val_ex, torch.bfloat16 if bf16 else None),
    }


ENGINES = ("plinth", "plinth-compiled", "trainer-best", "trainer-defaults")


def run_one(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """One engine's run in this process (the parent starts a fresh process for each)."""
    import torch

    from plinth.formats import locate_embedded_gguf
    from plinth.runtimes.torch_gguf import dequantised_dir
    from plinth.runtimes.torch_llama import pick_dtype

    torch.set_num_threads(args.threads)
    base = dequantised_dir(locate_embedded_gguf(), ROOT / "bench" / ".work" / "torch", dtype_name="float32")
    autocast = torch.bfloat16 if pick_dtype("cpu") == torch.bfloat16 else None
    load_before = os.getloadavg()[0]
    if engine == "plinth":
        r = run_plinth(base, args, autocast)
    elif engine == "plinth-compiled":
        r = run_plinth(base, args, autocast, compile_="on")
    elif engine == "trainer-best":
        r = run_trainer(base, args, bf16=autocast is not None, group_by_length=True, best=True)
    else:
        r = run_trainer(base, args, bf16=False, group_by_length=False, best=False)
    r["key"] = engine
    r["load_average"] = round((load_before + os.getloadavg()[0]) / 2, 2)
    r["threads"] = torch.get_num_threads()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=1, help="run plinth and the best-configured peer alternately this many times each")
    ap.add_argument("--no-defaults", action="store_true", help="skip the Trainer-with-defaults reference row")
    ap.add_argument("--no-compiled", action="store_true", help="skip plinth with compile=on")
    ap.add_argument("--notes", help="a markdown file (e.g. a profile table) appended to the results")
    ap.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)  # internal: run one engine, print its row as JSON
    ap.add_argument("--quick", action="store_true", help="3 steps (a smoke run); writes nothing unless --results-dir is given")
    add_results_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup = 3, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.one:
        print("ROW " + json.dumps(run_one(args.one, args)), flush=True)
        return
    facts = describe()
    print(machine_line(facts), flush=True)
    alternated = [e for e in ENGINES[:3] if not (args.no_compiled and e == "plinth-compiled")]
    order = [e for _ in range(max(1, args.repeat)) for e in alternated]
    if not args.no_defaults:
        order.append(ENGINES[3])
    # the first compiled run starts from an empty inductor cache (cold compile), later ones reuse it (warm)
    cache = ROOT / "bench" / ".work" / "inductor-cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    runs: list[dict[str, Any]] = []
    for engine in order:
        cmd = [sys.executable, __file__, "--one", engine, "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        cmd += ["--lr", str(args.lr), "--warmup", str(args.warmup), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}).stdout
        r = json.loads(next(line[4:] for line in out.splitlines() if line.startswith("ROW ")))
        runs.append(r)
        print(
            f"{r['engine']}: {r['tokens_per_s']:.0f} real tok/s, padding {100 * r['padding']:.0f}%, "
            f"{r['train_seconds']:.0f} s, val loss {r['val_loss']:.4f}, load average {r['load_average']}",
            flush=True,
        )
    rows = []
    for engine in ENGINES:
        mine = sorted((r for r in runs if r["key"] == engine), key=lambda r: r["tokens_per_s"])
        if mine:
            row = dict(mine[len(mine) // 2])
            row["runs_tokens_per_s"] = [round(r["tokens_per_s"], 1) for r in runs if r["key"] == engine]
            rows.append(row)
    write(facts, args, rows, runs)


def write(facts: dict[str, Any], args: argparse.Namespace, rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    by_key = {r["key"]: r for r in rows}
    p, peer = by_key["plinth"], by_key["trainer-best"]
    compiled = by_key.get("plinth-compiled")
    ratio = p["tokens_per_s"] / peer["tokens_per_s"]
    loads = [r["load_average"] for r in runs]
    lines = [
        title("Fine-tuning benchmark", facts),
        "",
        machine_line(facts),
        "",
        (
            f"Run {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by `bench/tuning.py"
            f"{' --quick' if args.quick else ''} --steps {args.steps} --repeat {args.repeat}`, no GPU, {args.threads} threads, "
            f"each run in a fresh process; load average during the runs {min(loads):.1f} to {max(loads):.1f} on "
            f"{os.cpu_count()} cores. SmolLM2-135M-Instruct (float32 weights dequantised from the embedded GGUF), LoRA r=8 "
            f"alpha=16 dropout 0.05 on q_proj and v_proj, {args.steps} steps of batch {args.batch_size}, learning rate {args.lr} "
            f"with {args.warmup} warm-up steps and cosine decay, the Acme Health FAQ (examples/acme-health/faq.jsonl) encoded "
            "with the model's chat template, loss on assistant tokens only; 10% of the rows held out for validation."
        ),
        "",
        (
            "| engine | precision | batching | real tok/s end to end (median) | every run | steady-state tok/s "
            "| first step s | padding | training s | final train loss | validation loss | load avg |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        every = ", ".join(f"{v:.0f}" for v in r["runs_tokens_per_s"])
        steady = f"{r['steady_tokens_per_s']:.0f}" if r.get("steady_tokens_per_s") else "-"
        first = f"{r['first_step_seconds']:.1f}" if r.get("first_step_seconds") else "-"
        lines.append(
            f"| {r['engine']} | {r['precision']} | {r['batching']} | {r['tokens_per_s']:.0f} | {every} | {steady} | {first} "
            f"| {100 * r['padding']:.0f}% | {r['train_seconds']:.0f} | {r['final_train_loss']:.4f} | {r['val_loss']:.4f} "
            f"| {r['load_average']} |"
        )
    met = ratio >= 1.5 and p["val_loss"] <= peer["val_loss"] + 1e-3
    lines += [
        "",
        "## Target",
        "",
        (
            f"- At least 1.5x the best-configured {peer['engine']} in real tokens/s at equal or better validation loss: "
            f"plinth {p['tokens_per_s']:.0f} vs {peer['tokens_per_s']:.0f} tok/s = **{ratio:.2f}x**, validation loss "
            f"{p['val_loss']:.4f} vs {peer['val_loss']:.4f} (**{'met' if met else 'missed'}**)."
        ),
    ]
    if compiled is not None:
        c_ratio = compiled["tokens_per_s"] / peer["tokens_per_s"]
        c_met = c_ratio >= 1.5 and compiled["val_loss"] <= peer["val_loss"] + 1e-3
        colds = [r for r in runs if r["key"] == "plinth-compiled"]
        warm = ", ".join(f"{r['first_step_seconds']:.0f}" for r in colds[1:])
        lines.append(
            f"- plinth with compile=on: {compiled['tokens_per_s']:.0f} tok/s end to end (compile included) = **{c_ratio:.2f}x** "
            f"(**{'met' if c_met else 'missed'}**), validation loss {compiled['val_loss']:.4f}; steady state "
            f"{compiled['steady_tokens_per_s']:.0f} tok/s vs the eager recipe's {p['steady_tokens_per_s']:.0f}. First step "
            f"(compile) {colds[0]['first_step_seconds']:.0f} s from an empty inductor cache" + (f", {warm} s warm" if warm else "") + "."
        )
    if "trainer-defaults" in by_key:
        d = by_key["trainer-defaults"]
        lines.append(f"- Against the {d['engine']}: {p['tokens_per_s'] / d['tokens_per_s']:.2f}x.")
    lines += [
        "",
        (
            "What plinth does differently: the frozen decoder weights are stored in bf16 once instead of being cast by "
            "autocast on every forward (the peer casts ~130M float32 weights per step, plinth only the LoRA matrices), the "
            "49k-wide output head and its softmax run only at the labelled positions (about 44% of the tokens here) instead "
            "of at every token, and batches come length-grouped. Both use fused AdamW. The loss curves are not identical "
            "step by step (the batches are ordered differently), so the validation losses are compared after the same "
            "number of steps."
        ),
    ]
    if args.notes:
        lines += ["", Path(args.notes).read_text(encoding="utf-8").strip()]
    if p["precision"] == "fp32":
        lines += [
            "",
            (
                "This CPU computes no bf16 (no AVX512-BF16 or AMX), so every engine ran in fp32 and the Trainer's bf16 switch "
                "was left off. In fp32 plinth's gain is only the padding and output-head work it skips: a LoRA step still runs "
                "the whole forward and the activation-gradient backward through all frozen weights, which is at this CPU's "
                "fp32 FMA peak for every engine."
            ),
        ]
    print("\n".join(lines))
    results_dir = results_dir_of(args)
    if results_dir is None:
        print("(--quick: no results written; give --results-dir to write them)")
        return
    data = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "rows": rows, "runs": runs}
    write_results("tuning", facts, "\n".join(lines), data, results_dir)


if __name__ == "__main__":
    main()
