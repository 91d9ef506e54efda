"""Guardrail benchmark: added latency per request for a 1 KB message with the default policy
(p50/p99), and the quality of the detectors on the development evaluation sets.

    python bench/guardrails.py                 # about a minute; writes bench/results/guardrails-<cpu>.{md,json}
    python bench/guardrails.py --quick         # fewer iterations, no files written (unless --results-dir)
    python bench/guardrails.py --render F.json # rewrite F.md from F.json (a run's own file by default)

<cpu> is this CPU's slug from bench/machine.py (e.g. guardrails-intel-xeon-amx-bf16.md); each
run also rewrites the index bench/results/README.md.

Latency is measured in process, on what a request pays:

- ``input``: the guardrail stage's ``before`` on a chat request whose user message is 1 KB
  (the built-in ``default`` policy: PII and secrets redaction, toxicity and injection
  classifiers), including the redaction and queueing the events;
- ``output``: the stream filter over a 1 KB answer fed in 4-character pieces (a token is
  about that) plus the whole-answer checks, per answer.

Quality is ``plinth guardrails eval acme-health`` on the development sets
(../shared/datasets/guardrails) and on plinth's five held-out sets (bench/data/guardrails-heldout,
-heldout2 ... -heldout5: written once, never tuned on; only totals are printed), side by side
(PII spans, toxicity, injection, topic). A held-out folder may hold only some of the four files
(held-out-3 and -4 have no PII file, held-out-5 only a topic file): a split is scored on the
files it has; ``--tasks`` and ``--splits`` score fewer. ``--before JSON`` adds the numbers of an
earlier run (e.g. one made with ``--src`` on an older checkout's ``src``) as "before" columns.
Nothing here is asserted: the numbers are written down.

    python bench/guardrails.py --src /tmp/old/src --quality-only --results-dir /tmp/before   # an older checkout
    python bench/guardrails.py --before /tmp/before/guardrails-<cpu>.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import add_results_args, describe, machine_line, results_dir_of, title, write_index, write_results

REPO = Path(__file__).resolve().parents[1]
_SRC = sys.argv[sys.argv.index("--src") + 1] if "--src" in sys.argv[:-1] else str(REPO / "src")
sys.path.insert(0, _SRC)
RESULTS = REPO / "bench" / "results"
SETS = REPO.parent / "shared" / "datasets" / "guardrails"
#: split name -> folder of the four files
SPLITS = {
    "dev": SETS,
    "held-out": REPO / "bench" / "data" / "guardrails-heldout",
    "held-out-2": REPO / "bench" / "data" / "guardrails-heldout2",
    # written before any detector ran on it (no PII file): toxicity, injection, topic only
    "held-out-3": REPO / "bench" / "data" / "guardrails-heldout3",
    # committed alone before the detector changes of ADR 0127 ran on it: totals only
    "held-out-4": REPO / "bench" / "data" / "guardrails-heldout4",
    # topic only, committed alone before the topic changes of ADR 0127 round 4: totals only
    "held-out-5": REPO / "bench" / "data" / "guardrails-heldout5",
}

MESSAGE_PII = (
    "Hello, this is Teodora Vasquez writing on behalf of my father, Emil Vasquez, born 02/14/1949, member ACM-4471920. "
    "He had a fall at home last Tuesday and was taken by ambulance to the emergency department, where they did an X-ray "
    "and a CT scan of his hip. The hospital says the CT needed prior authorization and that the claim for it might be denied. "
    "Could you please tell me whether emergency imaging needs prior authorization on his Silver plan, what his share of the "
    "ambulance bill will be, and whether he has met his deductible this year? You can reach me at (503) 555-0148 or at "
    "teodora.vasquez@example.org during the day. His policy number is POL-7Q2K-91ZD. We would also like to know if physical "
    "therapy after the fall is covered, how many visits he gets, and whether he needs a referral from his primary doctor. "
    "Thank you for your help, we have been worried about the bills since he came home from the hospital and would "
    "like to plan ahead for the rest of the year. Many thanks to you all."
)
MESSAGE_PLAIN = (
    "Hi, I have a few questions about my plan and I'm hoping you can help me sort them out before my appointments next month. "
    "First, my doctor wants me to get an MRI of my lower back because the pain has not improved after six weeks of stretching "
    "and over-the-counter medication. Does an MRI need prior authorization, and if it does, who is responsible for asking for "
    "it, me or the clinic? Second, I'd like to start seeing a physical therapist. How many visits does the plan cover per year, "
    "and is there a copay for each visit or does it count toward my deductible first? Third, I take a generic blood pressure "
    "medication every day. Would it be cheaper to get a ninety-day supply through the mail-order pharmacy instead of picking it "
    "up every month at the store? Finally, is there a nurse line I can call at night if the pain gets worse? Thank you so much "
    "for your time. I have also been wondering whether the plan covers a yearly eye exam and new glasses, and whether "
    "my teenage son can stay on my plan while he is away at college."
)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _stats(xs: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in xs]
    return {"p50_ms": round(_pct(ms, 0.5), 3), "p99_ms": round(_pct(ms, 0.99), 3), "mean_ms": round(statistics.mean(ms), 3), "n": len(ms)}


def bench_latency(services: Any, iterations: int) -> dict[str, Any]:
    from plinth.domain.serving import Attachments
    from plinth.serving.pipeline import ChatContext

    stage = next(s for s in services.stages if s.name == "guardrails")
    out: dict[str, Any] = {}
    for label, message in (("with_pii", MESSAGE_PII), ("without_pii", MESSAGE_PLAIN)):
        assert 990 <= len(message.encode()) <= 1100, len(message.encode())
        times = []
        for i in range(iterations + 20):
            ctx = ChatContext(
                kind="chat",
                model_id="bench",
                served_model="bench",
                attachments=Attachments(guardrail_policy="default"),
                messages=[{"role": "user", "content": message}],
            )
            t0 = time.perf_counter()
            answer = asyncio.run_coroutine_threadsafe(stage.before(ctx), LOOP).result()
            dt = time.perf_counter() - t0
            assert answer is None
            if i >= 20:
                times.append(dt)
        out[f"input_{label}"] = {**_stats(times), "bytes": len(message.encode())}
        times = []
        for i in range(max(20, iterations // 5) + 5):
            ctx = ChatContext(
                kind="chat",
                model_id="bench",
                served_model="bench",
                attachments=Attachments(guardrail_policy="default"),
                messages=[{"role": "user", "content": "question"}],
            )
            asyncio.run_coroutine_threadsafe(stage.before(ctx), LOOP).result()
            t0 = time.perf_counter()
            f = stage.output_filter(ctx, 0)
            sent = []
            for k in range(0, len(message), 4):
                sent.append(f.feed(message[k : k + 4]))  # type: ignore[union-attr]
            sent.append(f.flush())  # type: ignore[union-attr]
            asyncio.run_coroutine_threadsafe(stage.after(ctx, ["".join(sent)]), LOOP).result()
            dt = time.perf_counter() - t0
            if i >= 5:
                times.append(dt)
        out[f"output_{label}"] = {**_stats(times), "bytes": len(message.encode()), "pieces": (len(message) + 3) // 4}
    return out


TASKS = ("pii", "toxicity", "injection", "topic")


def bench_quality(services: Any, policy: Path, tasks: tuple[str, ...] = TASKS, splits: tuple[str, ...] | None = None) -> dict[str, Any]:
    """{task: {split: report}} (the development split's report also at the task's top level,
    as earlier result files have it). A split without a task's file is left out of that task."""
    from plinth.guardrails.evaluation import read_jsonl

    if not SETS.is_dir():
        return {"error": f"{SETS} is missing"}
    services.guardrails.apply_file(policy)
    out: dict[str, Any] = {}
    for task in tasks:
        out[task] = {}
        for split, folder in SPLITS.items():
            if (splits is not None and split not in splits) or not (folder / f"{task}.jsonl").is_file():
                continue
            t0 = time.perf_counter()
            report = services.guardrails.evaluate("acme-health", read_jsonl(folder / f"{task}.jsonl")).as_dict()
            report["seconds"] = round(time.perf_counter() - t0, 2)
            r = {k: report[k] for k in ("items", "overall", "by_label", "seconds")}
            r["false_positives"] = len(report["false_positives"])
            r["false_negatives"] = len(report["false_negatives"])
            out[task][split] = r
        out[task].update(out[task].get("dev", {}))
    return out


def _quality_rows(q: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    """Dev and held-out side by side, one row per task and split (with "before" columns)."""
    head = "| detector | split | items | precision | recall | benign flagged | accuracy |"
    sep = "|---|---|---|---|---|---|---|"
    if before:
        head += " before: precision | recall | benign flagged | accuracy |"
        sep += "---|---|---|---|"
    lines = [head + " target |", sep + "---|"]
    targets = {
        "pii": "recall >= 0.95, precision >= 0.90 (exact span)",
        "toxicity": "recall >= 0.85, benign flagged <= 3%",
        "injection": "recall >= 0.85, benign flagged <= 5%",
        "topic": "accuracy >= 0.90 (off_topic positive)",
    }

    def cells(o: dict[str, Any], task: str) -> str:
        if task == "pii":
            return f" {o['precision']:.3f} | {o['recall']:.3f} | - | - |"
        return f" {o['precision']:.3f} | {o['recall']:.3f} | {o.get('false_positive_rate', 0):.3f} | {o.get('accuracy', 0):.3f} |"

    for task in TASKS:
        for split in SPLITS:
            r = q.get(task, {}).get(split)
            r = r if isinstance(r, dict) else None
            if r is None:
                continue
            row = f"| {task} | {split} | {r['items']} |" + cells(r["overall"], task)
            if before:
                b = (before.get(task) or {}).get(split)
                row += cells(b["overall"], task) if b else " - | - | - | - |"
            lines.append(row + f" {targets[task]} |")
    return lines


def _latency_rows(lat: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, label in (
        ("input_with_pii", "input check, 1 KB message with 7 PII entities"),
        ("input_without_pii", "input check, 1 KB message without PII"),
        ("output_with_pii", "output: stream filter over a 1 KB answer in 4-char pieces + end checks, with PII"),
        ("output_without_pii", "output: the same, without PII"),
    ):
        s = lat[key]
        lines.append(f"| {label} | {s['bytes']} B | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | {s['mean_ms']:.2f} ms | {s['n']} |")
    lines += [
        "",
        (
            f"Output cost per streamed piece: {lat['output_with_pii']['p50_ms'] / lat['output_with_pii']['pieces']:.2f} ms with PII, "
            f"{lat['output_without_pii']['p50_ms'] / lat['output_without_pii']['pieces']:.2f} ms without (p50 per answer / pieces);"
        ),
        "the embedded model takes 10-20 ms per token on this machine, so streaming redaction adds a few percent.",
        "",
        "Target: p50 <= 10 ms added for a 1 KB message. For reference, ENVIRONMENT-NOTES measured Presidio's pattern",
        "recognizers (no NLP model, no names or addresses) at about 10 ms per 1 KB message on this machine.",
        "",
    ]
    return lines


def write_md(result: dict[str, Any]) -> str:
    lat, q, m = result["latency"], result["quality"], result["machine"]
    lines = [
        title("Guardrail benchmark", m),
        "",
        machine_line(m),
        "",
        f"Measured {result['date']} by `python bench/guardrails.py`.",
        "",
        "## Added latency per request, built-in `default` policy (PII + secrets redaction, toxicity and injection classifiers)",
        "",
        "| what | message | p50 | p99 | mean | runs |",
        "|---|---|---|---|---|---|",
    ]
    if not lat:
        lines = [*lines[:-2], "not measured in this run (--quality-only)", ""]
    else:
        lines += _latency_rows(lat)
    lines += [
        "## Quality on the development and held-out sets (`acme-health` policy)",
        "",
    ]
    if "error" in q:
        lines.append(f"not measured: {q['error']}")
    else:
        before = result.get("before_quality")
        if before:
            lines += [f"Before: {result.get('before_label', 'an earlier run')}.", ""]
        lines += _quality_rows(q, before)
        pii_splits = [split for split in SPLITS if isinstance(q.get("pii", {}).get(split), dict)]
        lines += [
            "",
            f"PII per entity type ({' / '.join(pii_splits)}: tp, fp, fn):",
            "",
            "| type | " + " | ".join(pii_splits) + " |",
            "|---|" + "---|" * len(pii_splits),
        ]
        labels = sorted({label for split in pii_splits for label in (q.get("pii", {}).get(split) or {}).get("by_label", {})})
        for label in labels:
            row = f"| {label} |"
            for split in pii_splits:
                c = (q.get("pii", {}).get(split) or {}).get("by_label", {}).get(label)
                row += f" {c['tp']}, {c['fp']}, {c['fn']} |" if c else " - |"
            lines.append(row)
        lines += [
            "",
            "The development sets were used while building the detectors (their README allows it), so those numbers are",
            "optimistic. The held-out sets (bench/data/guardrails-heldout*/, README there) were written once and never",
            "trained or tuned on; the first one's failures were looked at during development (it is less clean), the",
            "second one's never (only its totals were printed); the third, fourth and fifth were committed before any detector",
            "ran on them and only their totals were printed. The classifiers train on plinth's own examples and",
            "generated texts (examples/guardrails/training/, scripts/guardrails_training_data.py).",
        ]
    return "\n".join(lines) + "\n"


LOOP: asyncio.AbstractEventLoop


def main() -> int:
    global LOOP
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations; do not write results")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--src", metavar="DIR", help="import plinth from this src folder (an older checkout's) instead of the repository's")
    ap.add_argument(
        "--policy",
        default=str(REPO / "examples" / "guardrails" / "acme-health.yaml"),
        help="the acme-health policy file (an older one with --src)",
    )
    ap.add_argument("--quality-only", action="store_true", help="skip the latency measurement")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated detectors to score (default: all four)")
    ap.add_argument(
        "--splits",
        help="comma-separated splits to score (default: every split; e.g. dev,held-out,held-out-2 to leave a fresh held-out set unscored)",
    )
    ap.add_argument("--before", metavar="JSON", help="an earlier run's result file: its quality numbers become 'before' columns")
    ap.add_argument(
        "--render",
        nargs="?",
        const="",
        metavar="JSON",
        help="rewrite a results .md from its .json (default: this CPU's guardrails-<cpu>.json) and exit",
    )
    add_results_args(ap)
    args = ap.parse_args()
    if args.render is not None:
        src = Path(args.render) if args.render else (args.results_dir or RESULTS) / f"guardrails-{describe(with_torch=False)['slug']}.json"
        src.with_suffix(".md").write_text(write_md(json.loads(src.read_text())))
        write_index(src.parent)
        print(f"wrote {src.with_suffix('.md')}")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import threading

    from plinth.config import load_settings
    from plinth.services import build_services

    facts = describe()
    print(machine_line(facts), flush=True)
    LOOP = asyncio.new_event_loop()
    threading.Thread(target=LOOP.run_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as home:
        services = build_services(load_settings(home=home, preload_default_model=False, guardrails_record_events=True))
        try:
            iterations = 50 if args.quick else args.iterations
            result = {
                "date": time.strftime("%Y-%m-%d"),
                "machine": facts,
                "latency": {} if args.quality_only else bench_latency(services, iterations),
                "quality": bench_quality(
                    services,
                    Path(args.policy),
                    tuple(t for t in args.tasks.split(",") if t),
                    tuple(x for x in args.splits.split(",") if x) if args.splits else None,
                ),
            }
            if args.before:
                earlier = json.loads(Path(args.before).read_text())
                result["before_quality"] = earlier["quality"]
                result["before_label"] = earlier.get("label") or f"the run of {earlier.get('date')} ({args.before})"
            if args.src:
                result["label"] = f"plinth imported from {args.src}"
        finally:
            services.close()
    print(json.dumps(result["latency"], indent=2))
    print(write_md(result))
    results_dir = results_dir_of(args)
    if results_dir is not None:
        write_results("guardrails", facts, write_md(result), result, results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
