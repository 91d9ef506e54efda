"""Serving benchmark: plinth against the engines a user would run instead, in one run.

Engines (each started alone, on the same machine, with the same weights):
  - plinth (`plinth up`, llama.cpp runtime with continuous batching) on the embedded GGUF
  - `python -m llama_cpp.server` on the same GGUF (requests serialised, as it must)
  - `transformers serve --continuous-batching` on the same weights, dequantised to bf16
  - `llama-server`, llama.cpp's own C++ server, built from the llama.cpp sources of the
    installed llama-cpp-python (bench/llama_server.py, cached under bench/.work/), on the
    same GGUF and threads, restarted for each concurrency with as many parallel slots
    (`--parallel N --cont-batching`)
Load: the official openai client, streaming, the same prompts and max_tokens, at
concurrency 1, 8 and 32. Reported: aggregate output tokens/s, per-stream tokens/s, time to
first token p50/p99, errors, peak RSS of the server's process tree, and per-stream tokens/s
as a fraction of the memory-bandwidth ceiling (bandwidth / bytes of weights per token).
A second scenario serves 8 concurrent streams on 8 different LoRA adapters of one base.
The machine's 1-minute load average is sampled during every level and reported beside it:
on a shared machine the absolute numbers fall with the load, the ratios between engines
measured in the same run much less.

With --profile, plinth (llama.cpp engine) is also sampled with py-spy while it serves 8
streams, and the report says where its engine thread and its event loop spend their time
(py-spy is a bench-only tool: `pip install py-spy`).

Run:  make bench-serving     (or .venv/bin/python bench/serving.py [--quick] [--profile] [--results-dir DIR])
Writes bench/results/serving-<cpu>.md and .json, <cpu> being this CPU's slug from bench/machine.py
(e.g. serving-amd-epyc-avx2.md), and the index bench/results/README.md. A --quick run writes
nothing unless --results-dir is given.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import linecache
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import llama_server
from machine import add_results_args, describe, machine_line, results_dir_of, title, write_results

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
MODEL = "smollm2-135m-instruct"
TORCH_MODEL = "smollm2-torch"
MAX_TOKENS = 128
TOPICS = [
    "the history of the bicycle",
    "how volcanoes form",
    "a day in the life of a lighthouse keeper",
    "why the sky is blue",
    "the rules of chess",
    "how bread is made",
    "the water cycle",
    "a journey across the desert",
    "how vaccines work",
    "the life of honey bees",
    "the first moon landing",
    "how a computer stores data",
    "the migration of birds",
    "a storm at sea",
    "how trains changed cities",
    "the invention of paper",
    "a walk through an old forest",
    "how coffee is grown",
    "the planets of the solar system",
    "a small village market",
    "how rivers shape valleys",
    "the story of the printing press",
    "a winter night in the mountains",
    "how the heart pumps blood",
    "the building of a cathedral",
    "a robot learning to paint",
    "how tides work",
    "the life of a tree",
    "a detective solving a mystery",
    "the making of a violin",
    "how maps are drawn",
    "a festival of lights",
]


def prompt(i: int) -> str:
    return f"Write a long, detailed essay about {TOPICS[i % len(TOPICS)]}."


# -- process helpers ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc)."""
    total = 0
    try:
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        children = []
    for p in [str(pid), *children]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class RssSampler:
    """Peak RSS of a server's process tree, and the machine's 1-minute load average, sampled
    every 0.2 s (``mark()`` starts a new window for the load average)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self.loads.append(os.getloadavg()[0])
            time.sleep(0.2)

    def mark(self) -> None:
        self.loads = []

    def load(self) -> float:
        loads = self.loads or [os.getloadavg()[0]]
        return statistics.mean(loads)

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


@dataclass
class Engine:
    name: str
    cmd: list[str]
    env: dict[str, str]
    model: str
    weights_bytes: int
    weights: str
    ready_path: str = "/v1/models"
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]
    port: int = 0
    log: Path | None = None
    home: Path | None = None
    version: str = ""
    #: for servers started anew for each concurrency (llama-server's slots): the command for N streams
    cmd_for: Callable[[int], list[str]] | None = None
    #: run once before the engine's first start (llama-server: build it)
    prepare: Callable[[Engine], None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 600) -> None:
        self.log = WORK / f"{self.name}.log"
        with open(self.log, "wb") as fh:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None


# -- load generation ---------------------------------------------------------------------------
@dataclass
class RequestResult:
    ok: bool
    tokens: int = 0
    ttft: float = 0.0
    duration: float = 0.0
    error: str = ""


@dataclass
class LevelResult:
    engine: str
    scenario: str
    concurrency: int
    requests: int
    errors: int
    aggregate_tps: float
    per_stream_tps: float
    ttft_p50: float
    ttft_p99: float
    peak_rss_mb: float
    bw_fraction: float | None = None
    error_samples: list[str] = field(default_factory=list)
    load_avg: float | None = None  # the machine's mean 1-minute load average during the level


async def one_request(client, model: str, i: int) -> RequestResult:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    first = None
    tokens = 0
    usage_tokens = None
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt(i)}],
            max_tokens=MAX_TOKENS,
            temperature=0.7,
            seed=i,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.usage is not None and chunk.usage.completion_tokens:
                usage_tokens = chunk.usage.completion_tokens
            for c in chunk.choices:
                if c.delta and c.delta.content:
                    if first is None:
                        first = time.perf_counter()
                    tokens += 1
        end = time.perf_counter()
        return RequestResult(ok=True, tokens=usage_tokens or tokens, ttft=(first or end) - started, duration=end - (first or started))
    except Exception as e:  # every failure is counted and reported
        return RequestResult(ok=False, error=f"{type(e).__name__}: {str(e)[:160]}")


async def run_level(
    base_url: str, model: str, concurrency: int, n_requests: int, offset: int = 0, until: float | None = None
) -> tuple[list[RequestResult], float]:
    """``n_requests`` requests on ``concurrency`` streams (no new request starts after the
    ``time.perf_counter()`` deadline ``until``, if given); the results and the wall time."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=900)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n_requests):
        queue.put_nowait(offset + i)
    results: list[RequestResult] = []

    async def worker() -> None:
        while True:
            if until is not None and time.perf_counter() > until:
                return
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            m = model(i) if callable(model) else model
            results.append(await one_request(client, m, i))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    await client.close()
    return results, wall


def summarise(
    engine: Engine,
    scenario: str,
    concurrency: int,
    results: list[RequestResult],
    wall: float,
    rss: int,
    ceiling: float | None,
    load: float | None = None,
) -> LevelResult:
    ok = [r for r in results if r.ok]
    ttfts = sorted(r.ttft for r in ok) or [0.0]
    per_stream = [r.tokens / r.duration for r in ok if r.duration > 0 and r.tokens > 1]
    pst = statistics.mean(per_stream) if per_stream else 0.0
    return LevelResult(
        engine=engine.name,
        scenario=scenario,
        concurrency=concurrency,
        requests=len(results),
        errors=len(results) - len(ok),
        aggregate_tps=sum(r.tokens for r in ok) / wall if wall else 0.0,
        per_stream_tps=pst,
        ttft_p50=ttfts[len(ttfts) // 2],
        ttft_p99=ttfts[min(len(ttfts) - 1, round(0.99 * (len(ttfts) - 1)))],
        peak_rss_mb=rss / 1e6,
        bw_fraction=(pst / ceiling) if ceiling else None,
        error_samples=[r.error for r in results if not r.ok][:3],
        load_avg=load,
    )


# -- machine facts -----------------------------------------------------------------------------
def memory_bandwidth_gbs() -> float:
    import numpy as np

    a = np.ones(64 * 1024 * 1024, dtype=np.float64)  # 512 MiB
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best / 1e9  # read + write


# llama.cpp's extra buffer types (AMX) crash this build on this VM (docs/adr/0012); plinth
# turns them off, and so does every llama.cpp peer here, so all run the same kernels.
NO_EXTRA_BUFFERS = """
import llama_cpp, llama_cpp.llama as _hl
_orig = llama_cpp.llama_model_default_params
def _params():
    p = _orig(); p.use_extra_bufts = False; return p
_hl.llama_cpp.llama_model_default_params = _params
"""


def raw_llamacpp_single_stream(gguf: Path, threads: int) -> float:
    """Tokens/s of one greedy stream through llama-cpp-python directly (no server)."""
    chat = "<|im_start|>user\n" + prompt(0) + "<|im_end|>\n<|im_start|>assistant\n"
    code = (
        NO_EXTRA_BUFFERS
        + f"""
import time, llama_cpp
llm = llama_cpp.Llama(model_path={str(gguf)!r}, n_ctx=2048, n_threads={threads}, verbose=False)
toks = llm.tokenize({chat!r}.encode(), special=True)
best = 0.0
for _ in range(3):
    t = time.perf_counter(); n = 0
    for tok in llm.generate(toks, temp=0.7, top_k=0, top_p=1.0, min_p=0.0, reset=True):
        n += 1
        if n >= {MAX_TOKENS}: break
    best = max(best, n / (time.perf_counter() - t))
print(best)
"""
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def decode_costs(gguf: Path, threads: int) -> dict[str, float]:
    """What the llama.cpp engine's two C calls cost without any server, in a tight loop: one
    ``llama_decode`` of 1 and of 8 sequences (one new token each, one KV stream per sequence
    as the engine uses it; rounds interleaved so that the machine's drift hits all alike),
    the same 8 laid out out of id order (0 2 4 6 1 3 5 7: llama.cpp then computes one ubatch
    per run of consecutive ids, what plinth's engine did before it laid batches out by id),
    and one ``llama_sampler_sample`` (temperature then a seeded draw, full vocabulary)."""
    code = (
        NO_EXTRA_BUFFERS
        + f"""
import json, statistics, time, llama_cpp
llama_cpp.llama_backend_init()
model = llama_cpp.llama_model_load_from_file({str(gguf)!r}.encode(), llama_cpp.llama_model_default_params())
cp = llama_cpp.llama_context_default_params()
cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max, cp.kv_unified = 8 * 256, 64, 64, 8, False
cp.n_threads = cp.n_threads_batch = {threads}
cp.no_perf = True
ctx = llama_cpp.llama_init_from_model(model, cp)
mem = llama_cpp.llama_get_memory(ctx)
b = llama_cpp.llama_batch_init(64, 0, 1)
orders = {{"decode_1_ms": [0], "decode_8_ms": list(range(8)), "decode_8_unordered_ms": [0, 2, 4, 6, 1, 3, 5, 7]}}
times = {{k: [] for k in orders}}
for rnd in range(5):
    for name, ids in orders.items():
        llama_cpp.llama_memory_clear(mem, True)
        for pos in range(16):
            for i, s in enumerate(ids):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = 1000 + 7 * s + pos, pos, 1, 1
                b.seq_id[i][0] = s
            b.n_tokens = len(ids)
            t = time.perf_counter()
            assert llama_cpp.llama_decode(ctx, b) == 0
            if pos >= 4:
                times[name].append(time.perf_counter() - t)
chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(0.7))
llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(1))
sample = []
for _ in range(200):
    t = time.perf_counter()
    llama_cpp.llama_sampler_sample(chain, ctx, 7)
    sample.append(time.perf_counter() - t)
q = lambda xs: statistics.quantiles(xs, n=4)[0] * 1000  # lower quartile: the least disturbed
print(json.dumps({{**{{k: q(v) for k, v in times.items()}}, "sample_ms": q(sample)}}))
"""
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


#: llama.cpp file types (``llama_ftype``) of the copies :func:`format_costs` compares with the Q4_1 file
FORMAT_FTYPES = {"F16": 1, "F32": 0}


def format_copy(gguf: Path, name: str) -> Path:
    """The same weights in another llama.cpp format, made once under bench/.work by llama.cpp's
    own quantize (with ``allow_requantize``: it dequantises Q4_1 to float32 first, so the F32
    copy holds the Q4_1 file's values as float32 and the F16 copy those values rounded to half)."""
    dest = WORK / f"{gguf.stem}.{name}.gguf"
    if dest.exists():
        return dest
    code = f"""
import ctypes, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype, p.allow_requantize, p.nthread = {FORMAT_FTYPES[name]}, True, 2
assert llama_cpp.llama_model_quantize({str(gguf)!r}.encode(), {str(dest) + ".part"!r}.encode(), ctypes.byref(p)) == 0
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    Path(str(dest) + ".part").rename(dest)
    return dest


def format_costs(gguf: Path, threads: int, sizes: tuple[int, ...] = (1, 8, 32)) -> dict[str, dict[str, float]]:
    """One ``llama_decode`` of 1, 8 and 32 sequences (one new token each) for the Q4_1 file and
    for the same weights as F16 and F32 (:func:`format_copy`), models loaded one at a time,
    rounds interleaved by size; the lower quartile in ms. Where the Q4_1 step grows with the
    number of sequences and the F16/F32 one does not, the kernels batch those formats and not
    Q4_1 (the reading in the report)."""
    files = {"Q4_1": gguf, **{name: format_copy(gguf, name) for name in FORMAT_FTYPES}}
    out: dict[str, dict[str, float]] = {}
    for name, path in files.items():
        code = (
            NO_EXTRA_BUFFERS
            + f"""
import json, statistics, time, llama_cpp
llama_cpp.llama_backend_init()
mp = llama_cpp.llama_model_default_params()
model = llama_cpp.llama_model_load_from_file({str(path)!r}.encode(), mp)
cp = llama_cpp.llama_context_default_params()
cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max, cp.kv_unified = 32 * 64, 64, 64, 32, False
cp.n_threads = cp.n_threads_batch = {threads}
cp.no_perf = True
ctx = llama_cpp.llama_init_from_model(model, cp)
mem = llama_cpp.llama_get_memory(ctx)
b = llama_cpp.llama_batch_init(64, 0, 1)
times = {{n: [] for n in {sizes!r}}}
for rnd in range(3):
    for n in times:
        llama_cpp.llama_memory_clear(mem, True)
        for pos in range(12):
            for i in range(n):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = 1000 + 7 * i + pos, pos, 1, 1
                b.seq_id[i][0] = i
            b.n_tokens = n
            t = time.perf_counter()
            assert llama_cpp.llama_decode(ctx, b) == 0
            if pos >= 3:
                times[n].append(time.perf_counter() - t)
print(json.dumps({{str(n): statistics.quantiles(v, n=4)[0] * 1000 for n, v in times.items()}}))
"""
        )
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[name] = {**json.loads(res.stdout.strip().splitlines()[-1]), "file_mb": path.stat().st_size / 1e6}
        print(f"   {name}: " + ", ".join(f"{n} seq {ms:.1f} ms" for n, ms in out[name].items() if n != "file_mb"), flush=True)
    return out


def format_lines(formats: dict[str, dict[str, float]]) -> list[str]:
    """The report's table of :func:`format_costs`."""
    sizes = [k for k in next(iter(formats.values())) if k != "file_mb"]
    lines = [
        "## The same weights in formats llama.cpp batches (tight loop, no server, same threads)",
        "",
        (
            "One `llama_decode` of N sequences (one new token each), lower quartile of interleaved rounds, for the Q4_1 file "
            "every engine here serves and for copies of the same weights made by llama.cpp's own quantize (F32: the Q4_1 values "
            "dequantised to float32; F16: those values rounded to half precision). Tokens/s is N / step time: the ceiling of an engine "
            "that did nothing but decode."
        ),
        "",
        "| format | file MB | " + " | ".join(f"{n} seq: ms per step (tok/s)" for n in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for name, row in formats.items():
        cells = " | ".join(f"{row[n]:.1f} ({int(n) / row[n] * 1000:.0f})" for n in sizes)
        lines.append(f"| {name} | {row['file_mb']:.0f} | {cells} |")
    return [*lines, ""]


def hf_copy_of(gguf: Path) -> Path:
    """The same weights as a Hugging Face bf16 directory, for transformers serve (cached)."""
    dest = WORK / "smollm2-135m-instruct-hf"
    if (dest / "config.json").exists():
        return dest
    code = f"""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d, f = {str(gguf.parent)!r}, {gguf.name!r}
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.bfloat16)
if getattr(model, "hf_quantizer", None) is not None:
    model.hf_quantizer.remove_quantization_config(model)
model.save_pretrained({str(dest)!r})
tok.save_pretrained({str(dest)!r})
"""
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return dest


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests per level (a smoke run)")
    ap.add_argument("--engines", default="plinth,plinth-torch,llama_cpp.server,llama-server,transformers-serve")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--levels", default="1,8,32", help="concurrency levels (default 1,8,32)")
    ap.add_argument("--profile", action="store_true", help="also sample plinth with py-spy at 8 streams (needs py-spy)")
    ap.add_argument("--profile-seconds", type=int, default=60, help="how long py-spy samples (default 60)")
    ap.add_argument(
        "--append",
        action="store_true",
        help="add this run's engines to this CPU's last results (replacing their rows) instead of a new table",
    )
    ap.add_argument("--skip-lora", action="store_true", help="leave out the 8-adapter scenario")
    ap.add_argument("--build-jobs", type=int, default=2, help="compile jobs when llama-server must be built (default 2)")
    ap.add_argument(
        "--formats",
        action="store_true",
        help="also time llama_decode of 1/8/32 sequences on F16 and F32 copies of the same weights (tight loop)",
    )
    ap.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="SECONDS",
        help="after plinth's levels, keep 8 streams busy this long and sample its RSS (the target's soak is 600; default off)",
    )
    add_results_args(ap)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from plinth.formats import locate_embedded_gguf

    sys.path.insert(0, str(ROOT))
    from tests.support.adapters import write_random_gguf_lora

    WORK.mkdir(parents=True, exist_ok=True)
    gguf = locate_embedded_gguf()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    per_level = {1: 3, 8: 16, 32: 32}  # requests per level (a --quick run sends one per stream)
    concurrencies = [int(x) for x in args.levels.split(",")]
    levels = [(c, c if args.quick else per_level.get(c, 2 * c)) for c in concurrencies]
    facts = describe()
    earlier: dict[str, Any] | None = None
    if args.append:  # the machine facts and reference numbers stay those of the run added to
        previous = (results_dir_of(args) or ROOT / "bench" / "results") / f"serving-{facts['slug']}.json"
        earlier = json.loads(previous.read_text())
        bw, raw, costs = earlier["bandwidth_gbs"], earlier["raw_single_stream_tps"], earlier.get("llamacpp_call_costs_ms")
        print(f"adding to {previous} (measured {earlier.get('measured_at')})", flush=True)
    else:
        bw = memory_bandwidth_gbs()
        print(f"{machine_line(facts)} Memory bandwidth ~{bw:.1f} GB/s.", flush=True)
        raw = raw_llamacpp_single_stream(gguf, args.threads)
        print(f"raw llama-cpp-python single stream: {raw:.1f} tok/s", flush=True)
        costs = decode_costs(gguf, args.threads)
        print(f"llama.cpp calls in a tight loop: {costs}", flush=True)
        if args.formats:
            costs = {**costs, "formats": format_costs(gguf, args.threads)}  # type: ignore[dict-item]

    engines: list[Engine] = []
    results: list[LevelResult] = []
    wanted = set(args.engines.split(","))  # "none" with --append: rewrite the report only
    home = WORK / "plinth-home"
    shutil.rmtree(home, ignore_errors=True)
    if "plinth" in wanted:
        port = free_port()
        e = Engine(
            "plinth",
            [sys.executable, "-m", "plinth", "up"],
            {
                **env,
                "PLINTH_HOME": str(home),
                "PLINTH_PORT": str(port),
                "PLINTH_THREADS": str(args.threads),
                "PLINTH_MAX_BATCH_SIZE": "16",
                "PLINTH_CONTEXT_LENGTH": "2048",
                "PLINTH_MAX_QUEUED_PER_MODEL": "128",
                "PLINTH_LOG_LEVEL": "warning",
                "PLINTH_JOBS_LOCAL_WORKER": "false",
            },
            MODEL,
            gguf.stat().st_size,
            "Q4_1 GGUF",
            ready_path="/readyz",
        )
        e.port = port
        engines.append(e)
    if "plinth-torch" in wanted:
        port = free_port()
        thome = WORK / "plinth-torch-home"
        shutil.rmtree(thome, ignore_errors=True)
        tenv = {
            **env,
            "PLINTH_HOME": str(thome),
            "PLINTH_PORT": str(port),
            "PLINTH_THREADS": str(args.threads),
            "PLINTH_MAX_BATCH_SIZE": "32",
            "PLINTH_CONTEXT_LENGTH": "1024",
            "PLINTH_MAX_QUEUED_PER_MODEL": "128",
            "PLINTH_LOG_LEVEL": "warning",
            "PLINTH_DEFAULT_MODEL": TORCH_MODEL,
            "PLINTH_JOBS_LOCAL_WORKER": "false",
        }
        subprocess.run(
            [sys.executable, "-m", "plinth", "models", "add", str(gguf), "--name", TORCH_MODEL, "--runtime", "torch"],
            env=tenv,
            check=True,
            capture_output=True,
        )
        from plinth.formats.gguf import parse_header
        from plinth.runtimes.torch_llama import pick_dtype

        dtype = pick_dtype("cpu")  # what the torch runtime computes in on this CPU
        dtype_name = "bf16" if dtype.itemsize == 2 else "fp32"
        step_bytes = dtype.itemsize * sum(t.n_elements for t in parse_header(gguf).tensors)  # what one decode step reads
        e = Engine(
            "plinth-torch",
            [sys.executable, "-m", "plinth", "up"],
            tenv,
            TORCH_MODEL,
            step_bytes,
            f"Q4_1 GGUF, dequantised to {dtype_name} by the torch runtime",
            ready_path="/readyz",
        )
        e.port = port
        e.home = thome
        engines.append(e)
    if "llama_cpp.server" in wanted:
        port = free_port()
        e = Engine(
            "llama_cpp.server",
            [
                sys.executable,
                "-c",
                NO_EXTRA_BUFFERS
                + "import runpy, sys; sys.argv[0] = 'llama_cpp.server'; runpy.run_module('llama_cpp.server', run_name='__main__')",
                "--model",
                str(gguf),
                "--model_alias",
                MODEL,
                "--port",
                str(port),
                "--n_ctx",
                "4096",
                "--n_threads",
                str(args.threads),
                "--n_threads_batch",  # prompt processing: its default is every core
                str(args.threads),
                "--interrupt_requests",
                "False",
            ],
            env,
            MODEL,
            gguf.stat().st_size,
            "Q4_1 GGUF",
        )
        e.port = port
        engines.append(e)
    if "llama-server" in wanted:
        port = free_port()
        built: dict[str, Path] = {}

        def build(e: Engine) -> None:  # when its turn comes: the first build takes about 10 minutes
            built["binary"] = llama_server.ensure_llama_server(jobs=args.build_jobs)
            e.version = llama_server.server_version(built["binary"])

        def cmd_for(slots: int, port: int = port) -> list[str]:
            # each slot gets plinth's per-sequence context (2048 tokens)
            binary = built.get("binary", Path("llama-server"))
            return llama_server.server_command(binary, gguf, port=port, alias=MODEL, threads=args.threads, slots=slots, ctx_per_slot=2048)

        e = Engine("llama-server", [], env, MODEL, gguf.stat().st_size, "Q4_1 GGUF", ready_path="/health", cmd_for=cmd_for, prepare=build)
        e.port = port
        engines.append(e)
    if "transformers-serve" in wanted:
        hf = hf_copy_of(gguf)
        port = free_port()
        weights = sum(f.stat().st_size for f in hf.glob("*.safetensors"))
        e = Engine(
            "transformers serve --continuous-batching",
            [
                str(Path(sys.executable).parent / "transformers"),
                "serve",
                str(hf),
                "--continuous-batching",
                "--dtype",
                "bfloat16",
                "--device",
                "cpu",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            {**env, "OMP_NUM_THREADS": str(args.threads)},  # torch takes its thread count from it
            str(hf),
            weights,
            "bf16 safetensors (dequantised from the GGUF)",
            ready_path="/health",
        )
        e.port = port
        engines.append(e)

    lora: dict[str, dict[str, float]] = {}
    profile: dict[str, Any] | None = None
    soak: dict[str, Any] | None = None
    run_load = [os.getloadavg()[0]]
    if earlier is not None:  # this run's engines replace their earlier rows
        names = {e.name for e in engines}
        results[:0] = [LevelResult(**d) for d in earlier["levels"] if d["engine"] not in names]
        lora.update({k: v for k, v in earlier.get("lora", {}).items() if k not in names})
        profile = earlier.get("profile") if not args.profile else None
        soak = earlier.get("soak") if not args.soak else None
        run_load[:0] = earlier.get("load_avg") or []
    keys = {"transformers serve --continuous-batching": "transformers-serve"}
    order = [*args.engines.split(","), *(e.name for e in engines)]
    engines.sort(key=lambda e: order.index(keys.get(e.name, e.name)))  # in the order --engines gives
    for e in engines:
        print(f"== {e.name}", flush=True)
        if e.prepare is not None:
            try:
                e.prepare(e)
            except Exception as ex:  # a peer that cannot be built is reported, not hidden
                print(f"   could not be prepared: {ex}", flush=True)
                results.append(LevelResult(e.name, "base", 0, 0, 1, 0, 0, 0, 0, 0, error_samples=[f"build failed: {str(ex)[:300]}"]))
                continue
        # a server with one configuration for every level starts once; llama-server starts per level
        rounds = [levels] if e.cmd_for is None else [[lvl] for lvl in levels]
        for round_levels in rounds:
            if e.cmd_for is not None:
                e.cmd = e.cmd_for(round_levels[0][0])
            try:
                e.start()
            except Exception as ex:  # a peer that cannot start is reported, not hidden
                print(f"   could not start: {ex}", flush=True)
                conc = round_levels[0][0] if e.cmd_for is not None else 0
                results.append(LevelResult(e.name, "base", conc, 0, 1, 0, 0, 0, 0, 0, error_samples=[str(ex)[:300]]))
                continue
            ceiling = bw * 1e9 / e.weights_bytes
            try:
                with RssSampler(e.proc.pid) as rss:  # type: ignore[union-attr]
                    asyncio.run(run_level(e.base_url, e.model, 1, 1, offset=100))  # warm-up
                    for conc, n in round_levels:
                        rss.mark()
                        res, wall = asyncio.run(run_level(e.base_url, e.model, conc, n))
                        lr = summarise(e, "base", conc, res, wall, rss.peak, ceiling, rss.load())
                        results.append(lr)
                        run_load.append(lr.load_avg or 0.0)
                        print(
                            f"   c={conc}: {lr.aggregate_tps:.1f} tok/s aggregate, {lr.per_stream_tps:.1f}/stream, "
                            f"TTFT p50 {lr.ttft_p50:.2f}s p99 {lr.ttft_p99:.2f}s, errors {lr.errors}, "
                            f"RSS {lr.peak_rss_mb:.0f} MB, load avg {lr.load_avg:.1f}",
                            flush=True,
                        )
                    if e.name == "plinth" and not args.skip_lora:
                        lora["plinth"] = lora_scenario(e, MODEL, home, gguf_loras(gguf, write_random_gguf_lora), rss)
                    if e.name == "plinth" and args.soak > 0:
                        soak = soak_engine(e, MODEL, args.soak)
                    if e.name == "plinth" and args.profile:
                        profile = profile_engine(e, MODEL, 8, args.profile_seconds)
                    if e.name == "plinth-torch" and not args.skip_lora:
                        lora["plinth-torch"] = lora_scenario(e, TORCH_MODEL, e.home, peft_loras(), rss)
            finally:
                e.stop()
        # what is measured so far, should the run be stopped before its report
        (WORK / "serving-partial.json").write_text(json.dumps({"levels": [asdict(r) for r in results], "lora": lora}, indent=1))

    write_report(facts, bw, raw, results, lora, engines, results_dir_of(args), vars(args), profile, run_load, costs, earlier, soak)


def gguf_loras(gguf: Path, writer) -> Any:  # type: ignore[no-untyped-def]
    def make(dest: Path, i: int) -> Path:
        f = dest / f"bench-lora-{i}.gguf"
        writer(f, base_gguf=gguf, rank=8, alpha=16.0, seed=i, scale=0.1)
        return f

    return make


def peft_loras() -> Any:
    sys.path.insert(0, str(ROOT))
    from tests.support.adapters import random_peft_llama_tensors, write_peft_dir

    def make(dest: Path, i: int) -> Path:
        t = random_peft_llama_tensors(
            n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=8, modules=("q_proj", "v_proj"), seed=i, scale=0.1
        )
        return write_peft_dir(dest / f"bench-peft-{i}", t, r=8, alpha=16.0, target_modules=["q_proj", "v_proj"])

    return make


def lora_scenario(e: Engine, model: str, home: Path, make, rss: RssSampler) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """8 concurrent streams, each on a different adapter, against the same load on the base."""
    imports = home / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        path = make(imports, i)
        r = httpx.post(f"http://127.0.0.1:{e.port}/api/v1/models/{model}/adapters", json={"path": str(path), "name": f"ad{i}"}, timeout=120)
        r.raise_for_status()
    asyncio.run(run_level(e.base_url, lambda i: f"{model}:ad{i % 8}", 8, 8, offset=200))  # load every adapter
    base, wall_b = asyncio.run(run_level(e.base_url, model, 8, 16))
    mixed, wall_m = asyncio.run(run_level(e.base_url, lambda i: f"{model}:ad{i % 8}", 8, 16))
    b = sum(r.tokens for r in base if r.ok) / wall_b
    m = sum(r.tokens for r in mixed if r.ok) / wall_m
    errors = [r.error for r in base + mixed if not r.ok]
    if errors or not b:
        print(f"   LoRA scenario errors: {errors[:3]}", flush=True)
        return {"base_tps": b, "adapters_tps": m, "ratio": 0.0, "errors": float(len(errors)), "peak_rss_mb": rss.peak / 1e6}
    print(f"   LoRA: 8 streams on base {b:.1f} tok/s, on 8 adapters {m:.1f} tok/s ({m / b:.2f}x)", flush=True)
    return {"base_tps": b, "adapters_tps": m, "ratio": m / b, "errors": float(len(errors)), "peak_rss_mb": rss.peak / 1e6}


def soak_engine(e: Engine, model: str, seconds: int, streams: int = 8) -> dict[str, Any]:
    """``streams`` streams kept busy for ``seconds``, the server's RSS sampled every 10 s: flat
    when the last minute's median is within 5% of the second minute's (the first minute is
    warm-up: the KV cache and allocator pages are touched as prompts arrive)."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not stop.wait(10.0):
            samples.append((round(time.perf_counter() - t0, 1), round(tree_rss_bytes(e.proc.pid) / 1e6, 1)))  # type: ignore[union-attr]

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        res, wall = asyncio.run(run_level(e.base_url, model, streams, 10**6, offset=1000, until=t0 + seconds))
    finally:
        stop.set()
        th.join()
    second = [m for t, m in samples if 60 < t <= 120] or [m for _, m in samples[:6]]
    last = [m for t, m in samples if t > wall - 60] or [m for _, m in samples[-6:]]
    ref, end = statistics.median(second), statistics.median(last)
    out = {
        "seconds": round(wall, 1),
        "streams": streams,
        "requests": len(res),
        "errors": sum(1 for r in res if not r.ok),
        "aggregate_tps": sum(r.tokens for r in res if r.ok) / wall,
        "rss_second_minute_mb": ref,
        "rss_last_minute_mb": end,
        "rss_max_mb": max(m for _, m in samples),
        "growth": end / ref - 1,
        "flat": abs(end / ref - 1) <= 0.05,
        "samples": samples,
    }
    print(
        f"   soak {wall:.0f} s on {streams} streams: {out['requests']} requests, {out['errors']} errors, RSS "
        f"{ref:.0f} MB (2nd minute) -> {end:.0f} MB (last minute), max {out['rss_max_mb']:.0f} MB",
        flush=True,
    )
    return out


def soak_lines(soak: dict[str, Any]) -> list[str]:
    """The soak's line under Targets and its RSS by minute."""
    by_minute: dict[int, float] = {}
    for t, m in soak["samples"]:
        by_minute[int(t // 60)] = m
    return [
        (
            f"- Flat RSS over a {soak['seconds'] / 60:.0f}-minute soak ({soak['streams']} streams kept busy, {soak['requests']} requests, "
            f"{soak['errors']} errors, {soak['aggregate_tps']:.1f} tok/s): plinth {soak['rss_second_minute_mb']:.0f} MB in the "
            f"second minute, {soak['rss_last_minute_mb']:.0f} MB in the last, **{soak['growth'] * 100:+.1f}%** "
            f"({'met' if soak['flat'] and not soak['errors'] else 'missed'}; flat = within 5%). RSS at the end of each minute (MB): "
            + ", ".join(f"{m:.0f}" for _, m in sorted(by_minute.items()))
            + "."
        )
    ]


# -- where plinth's time goes (py-spy) ---------------------------------------------------------
#: llama.cpp functions (called through ctypes, so they have no Python frame of their own: a
#: sample inside one shows the Python line that called it) and the part of the work they are
C_PARTS = {
    "llama_decode": "llama_decode: the forward pass of the whole batch (C, GIL released)",
    "llama_sampler_sample": "sampling: llama.cpp's sampler chain per sequence (C)",
    "llama_sampler_apply": "sampling under a grammar (structured outputs)",
    "llama_token_to_piece": "detokenize: token to bytes (llama_token_to_piece)",
    "llama_vocab_is_eog": "per-token bookkeeping (Delta, counters, stop checks)",
    "llama_memory_seq_rm": "admission and release (KV cells, samplers)",
    "llama_sampler_free": "admission and release (KV cells, samplers)",
    "llama_set_adapters_lora": "switching LoRA adapters",
}
#: what a sample of the engine thread is doing, by the innermost frame that names it
ENGINE_PARTS = (
    ("_sample_constrained", "sampling under a grammar (structured outputs)"),
    ("_logprob", "log-probabilities (numpy, only rows that asked)"),
    ("_token_bytes", "detokenize: token to bytes (llama_token_to_piece)"),
    ("feed", "detokenize: incremental UTF-8 decoding"),
    ("call_soon_threadsafe", "hand-off: waking the event loop (call_soon_threadsafe)"),
    ("put", "hand-off: the request's sink (Python)"),
    ("_deliver", "per-token bookkeeping (Delta, counters, stop checks)"),
    ("_accept", "per-token bookkeeping (Delta, counters, stop checks)"),
    ("_release", "admission and release (KV cells, samplers)"),
    ("_admit", "admission and release (KV cells, samplers)"),
    ("_drain_inbox", "inbox and cancellation checks"),
    ("_drop_cancelled", "inbox and cancellation checks"),
    ("_step", "building the batch (Python loop over sequences)"),
)
#: the same for the event loop (the server's main thread), by the outermost plinth/library frame
LOOP_PARTS = (
    ("sse", "SSE: building and writing chunks"),
    ("stream_deltas", "hand-off: the per-request asyncio queue"),
    ("dumps", "JSON encoding of chunks"),
    ("model_dump", "JSON encoding of chunks"),
    ("write", "socket writes (transport)"),
    ("send", "ASGI send / HTTP framing"),
    ("select", "waiting in epoll (idle, or runnable but not scheduled)"),
    ("_run_once", "the event loop itself (scheduling callbacks)"),
)


def _frame_name(frame: str) -> str:
    return frame.split(" (", 1)[0].rsplit(".", 1)[-1]


def _c_call(frame: str) -> str | None:
    """The llama.cpp function that a frame's source line calls, if the line is in plinth."""
    m = re.search(r"\((plinth/[\w/]+\.py):(\d+)\)$", frame)
    if not m:
        return None
    line = linecache.getline(str(ROOT / "src" / m.group(1)), int(m.group(2)))
    call = re.search(r"llama_cpp\.(llama_\w+)\(", line)
    return call.group(1) if call else None


def classify_profile(raw: str) -> dict[str, Any]:
    """Sample counts of py-spy's raw (collapsed) output, by thread and by part of the work."""
    threads: collections.Counter[str] = collections.Counter()
    engine: collections.Counter[str] = collections.Counter()
    loop: collections.Counter[str] = collections.Counter()
    loop_self: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        frames = frames[1:] if frames[0].startswith("thread") else frames
        names = [_frame_name(f) for f in frames]
        if thread.startswith("llama-batch"):
            threads["engine thread"] += n
            part = None  # the innermost frame that names a part wins
            c = _c_call(frames[-1]) if frames else None
            if c is not None:
                part = C_PARTS.get(c, f"{c} (C)")
            for nm in reversed(names if part is None else []):
                hit = next((label for key, label in ENGINE_PARTS if nm == key), None)
                if hit:
                    part = hit
                    break
            engine[part or "other"] += n
        elif thread == "MainThread":
            threads["event loop (main thread)"] += n
            hit = None
            for f, nm in zip(reversed(frames), reversed(names), strict=True):
                key = next((label for k, label in LOOP_PARTS if k in nm.lower() or (k == "sse" and "sse" in f.lower())), None)
                if key:
                    hit = key
                    break
            loop[hit or "other (routing, validation, middleware)"] += n
            loop_self[frames[-1] if frames else "?"] += n
        else:
            threads[f"other threads ({thread.split('-')[0] or thread})"] += n
    return {
        "threads": dict(threads),
        "engine": dict(engine.most_common()),
        "loop": dict(loop.most_common()),
        "loop_top_frames": dict(loop_self.most_common(8)),
    }


def engine_counters(e: Engine, model: str) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{e.port}/api/v1/models/{model}", timeout=30)
    r.raise_for_status()
    return dict(r.json().get("engine") or {})


def profile_engine(e: Engine, model: str, concurrency: int, seconds: int) -> dict[str, Any]:
    """Sample the plinth server with py-spy (100 Hz, non-blocking) while ``concurrency`` streams
    keep it busy, and count the samples by thread and by part of the work."""
    exe = Path(sys.executable).parent / "py-spy"
    py_spy = str(exe) if exe.exists() else shutil.which("py-spy")
    if py_spy is None or e.proc is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out = WORK / "plinth-profile.txt"
    warm, rate = 5.0, 100
    deadline = time.perf_counter() + warm + seconds + 5
    holder: dict[str, Any] = {}

    def load() -> None:
        holder["results"] = asyncio.run(run_level(e.base_url, model, concurrency, 100_000, offset=300, until=deadline))

    t = threading.Thread(target=load, daemon=True)
    t.start()
    time.sleep(warm)
    before = engine_counters(e, model)
    t0 = time.perf_counter()
    cmd = [py_spy, "record", "--pid", str(e.proc.pid), "--duration", str(seconds), "--rate", str(rate)]
    cmd += ["--format", "raw", "--threads", "--nonblocking", "--output", str(out)]
    spy = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = engine_counters(e, model)
    t.join()
    if spy.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {(spy.stderr or spy.stdout)[-300:]}"}
    summary = classify_profile(out.read_text())
    tokens = after.get("tokens", 0) - before.get("tokens", 0)
    steps = after.get("steps", 0) - before.get("steps", 0)
    summary.update(
        concurrency=concurrency,
        seconds=wall,
        rate=rate,
        tokens=tokens,
        steps=steps,
        tokens_per_s=tokens / wall if wall else 0.0,
        ms_per_step=1000 * wall / steps if steps else 0.0,
        seqs_per_step=tokens / steps if steps else 0.0,
        errors=sum(1 for r in holder.get("results", ([], 0))[0] if not r.ok),
        load_avg=os.getloadavg()[0],
    )
    print(
        f"   profile at {concurrency} streams: {summary['tokens_per_s']:.1f} tok/s, {summary['ms_per_step']:.1f} ms/step, "
        f"{summary['seqs_per_step']:.1f} tokens/step; engine {summary['engine']}",
        flush=True,
    )
    return summary


def profile_lines(p: dict[str, Any]) -> list[str]:
    if "error" in p:
        return ["## Where plinth's time goes", "", f"The profile could not be taken: {p['error']}", ""]
    samples = p["seconds"] * p["rate"]  # samples one always-busy thread would give
    ms_tok = 1000 * p["seconds"] / p["tokens"] if p["tokens"] else 0.0
    lines = [
        f"## Where plinth's time goes (py-spy, llama.cpp engine, {p['concurrency']} streams)",
        "",
        (
            f"py-spy sampled the plinth server {p['rate']} times a second for {p['seconds']:.0f} s (non-blocking) while "
            f"{p['concurrency']} streams kept it busy: {p['tokens']} tokens in {p['steps']} engine steps "
            f"({p['tokens_per_s']:.1f} tok/s while sampled, {p['ms_per_step']:.1f} ms per step, {p['seqs_per_step']:.1f} "
            f"tokens per step, {ms_tok:.2f} ms of wall time per token; load average {p['load_avg']:.1f}). "
            "Shares are of wall time: a thread busy all the time would show 100%; a thread waiting "
            "(for the GIL, a lock, the network) is not sampled."
        ),
        "",
        "| thread | busy share of wall time |",
        "|---|---|",
    ]
    for name, n in sorted(p["threads"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {100 * n / samples:.1f}% |")
    lines += ["", "| engine thread: part of the step | share of wall time | ms per step | ms per token |", "|---|---|---|---|"]
    for name, n in p["engine"].items():
        frac = n / samples
        per_step = frac * p["ms_per_step"]
        lines.append(f"| {name} | {100 * frac:.1f}% | {per_step:.2f} | {frac * ms_tok:.3f} |")
    lines += ["", "| event loop: part of the work | share of wall time | ms per token |", "|---|---|---|"]
    for name, n in p["loop"].items():
        frac = n / samples
        lines.append(f"| {name} | {100 * frac:.1f}% | {frac * ms_tok:.3f} |")
    top = "; ".join(f"`{f}` {n}" for f, n in p["loop_top_frames"].items())
    lines += ["", f"Event loop frames with the most samples (innermost): {top}", ""]
    return lines


ANALYSIS = """## Reading these numbers

- The load generator (the openai client parsing every streamed chunk) runs on the same two
  cores as the engine under test, for every engine alike. The VM's own speed drifts: the same
  tight llama.cpp loop measured 44 ms and 57-87 ms per 8-sequence step minutes apart, so
  compare engines within one run only, and expect +-20% or more between runs.
- llama.cpp's decode of this Q4_1 model is compute-bound, not bandwidth-bound, and grows
  with the number of sequences in a step (the tight-loop costs above; on the AVX2 EPYC a step
  took ~10.5 ms for 1 sequence and ~44 ms for 8, see docs/adr/0010). llama.cpp's batched CPU
  matrix kernels on x86 (tinyBLAS, the repacked layouts) cover Q4_0, Q5_0, Q8_0 and others
  but not Q4_1, so each extra sequence in a step adds its own full set of dot products.
  Sampling costs a fraction of a millisecond per sequence per step.
- `llama-server` runs the same llama.cpp (built from the sources llama-cpp-python vendors),
  so its throughput and plinth's llama.cpp engine are bounded by the same `llama_decode`; the
  difference between them is what each adds around it. This benchmark starts plinth with 16
  sequences per batch (`PLINTH_MAX_BATCH_SIZE=16`) while `llama-server` gets 32 slots at 32
  streams: there half of plinth's requests wait for a free sequence, which shows in its TTFT.
- With one KV stream per sequence llama.cpp computes one ubatch (a pass over the weights) per
  run of consecutive sequence ids in a batch; plinth lays batches out by id and hands out the
  lowest free id (docs/adr/0122), the "out of id order" cost above is what that avoids.
- `llama_cpp.server` serialises requests: its per-stream speed stays high while time to first
  token grows with the queue (p99 over a minute at 32). plinth and `transformers serve`
  interleave streams; transformers needs ~6 GB for a 135M model, plinth ~1 GB (most of it
  the KV cache reserved for 16 sequences x 2048 tokens).
- With 8 different adapters, llama.cpp applies a LoRA to a whole context, so plinth decodes
  one adapter group per step; the ratio to the base load is the cost of that grouping.
"""


def write_report(
    facts: dict[str, Any],
    bw: float,
    raw: float,
    results: list[LevelResult],
    lora: dict[str, dict[str, float]],
    engines: list[Engine],
    results_dir: Path | None,
    args: dict[str, Any],
    profile: dict[str, Any] | None = None,
    run_load: list[float] | None = None,
    costs: dict[str, float] | None = None,
    earlier: dict[str, Any] | None = None,
    soak: dict[str, Any] | None = None,
) -> None:
    """The Markdown report and its JSON; with ``earlier`` (an --append run), this run's
    engines are added to that run's table."""
    by = {(r.engine, r.concurrency): r for r in results}
    earlier = earlier or {}
    lines = [
        title("Serving benchmark", facts),
        "",
        machine_line(facts),
        "",
        (
            f"Run {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by `bench/serving.py`, no GPU"
            f"{', --quick (fewer requests per level)' if args.get('quick') else ''}. "
            f"Memory bandwidth (numpy copy) ~{bw:.1f} GB/s. Model: SmolLM2-135M-Instruct. Streaming chat requests "
            f"through the official openai client, max_tokens={MAX_TOKENS}, temperature 0.7, one prompt per request "
            '("Write a long, detailed essay about ..."), engines started one at a time, '
            f"each on {args.get('threads')} thread{'' if args.get('threads') == 1 else 's'}"
            + (
                " (fewer than the cores: on a shared machine, llama.cpp threads that wait for each other at every "
                "matmul stall whenever one is descheduled)."
                if (args.get("threads") or 0) < (facts.get("cores") or 0)
                else "."
            )
        ),
        "",
    ]
    loads = [x for x in (run_load or []) if x]
    if loads:
        lines += [
            (
                f"**The machine was shared during this run**: its 1-minute load average was {min(loads):.1f} to "
                f"{max(loads):.1f} on {facts.get('cores')} cores (column *load avg*: its mean during each level). "
                "Under contention every engine is slower than alone, so read the absolute numbers as lower bounds "
                "and compare engines by their ratios within this run; levels measured under very different loads "
                "compare less well."
                if max(loads) > 1.5 * (facts.get("cores") or 2) / 2
                else f"The machine's 1-minute load average was {min(loads):.1f} to {max(loads):.1f} during the run."
            ),
            "",
        ]
    names = {e.name for e in engines}
    notes = {k: v for k, v in earlier.get("engine_notes", {}).items() if k not in names}
    for e in engines:
        if e.version:
            cmd = e.cmd_for(1) if e.cmd_for else e.cmd  # shown for N slots: --parallel N, N times the context
            shown = " ".join(
                "N" if prev == "--parallel" else f"{a}*N" if prev == "--ctx-size" else Path(a).name if "/" in a else a
                for prev, a in zip(["", *cmd], cmd, strict=False)
            )
            notes[e.name] = f"{e.name}: `{e.version}`, started for each level as `{shown}` (N = the concurrency)."
    for note in notes.values():
        lines += [note, ""]
    appended: dict[str, Any] | None = None
    if earlier and names:
        appended = {
            "engines": sorted(names),
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "to_run_of": earlier.get("measured_at"),
        }
    elif earlier.get("appended"):  # the report rewritten: keep saying which rows came later
        appended = {"at": earlier.get("measured_at"), **earlier["appended"]}
    if appended:
        lines += [
            (
                f"Rows of {', '.join(appended['engines'])} were added by a second run (`--append`) at {appended['at']}, "
                f"after the first ({appended['to_run_of']}); the reference numbers above and below are the first run's."
            ),
            "",
        ]
    lines += [
        (
            "| engine | weights | concurrency | requests | errors | aggregate tok/s | per-stream tok/s |"
            " TTFT p50 s | TTFT p99 s | peak RSS MB | per-stream / bandwidth ceiling | load avg |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    weights = {**earlier.get("weights", {}), **{e.name: e.weights for e in engines}}
    for r in results:
        frac = f"{100 * r.bw_fraction:.1f}%" if r.bw_fraction is not None else "-"
        load = f"{r.load_avg:.1f}" if r.load_avg is not None else "-"
        lines.append(
            f"| {r.engine} | {weights.get(r.engine, '')} | {r.concurrency} | {r.requests} | {r.errors} | {r.aggregate_tps:.1f} | "
            f"{r.per_stream_tps:.1f} | {r.ttft_p50:.2f} | {r.ttft_p99:.2f} | {r.peak_rss_mb:.0f} | {frac} | {load} |"
        )
    start_load = f" (load average {run_load[0]:.1f} then)" if run_load else ""
    lines += [
        "",
        (
            f"Raw llama.cpp through llama-cpp-python (no server), one stream, same GGUF: **{raw:.1f} tok/s**, measured once at "
            f"the start of the run{start_load}; on a shared machine it moves with the load like every row above."
        ),
        "",
    ]
    errs = [f"- {r.engine} c={r.concurrency}: {s}" for r in results for s in r.error_samples]
    if errs:
        lines += ["Error samples:", "", *errs, ""]
    lines += ["## Targets", ""]
    ours = [n for n in ("plinth", "plinth-torch") if (n, 1) in by]
    for name in ours:
        p1 = by[(name, 1)]
        ls1 = by.get(("llama-server", 1))
        # llama-server's one stream is the same llama.cpp measured through the same client, during the
        # run rather than once at its start: the verdict is against the higher of the two references
        ref, ref_name = raw, "raw"
        if ls1 and ls1.per_stream_tps > raw:
            ref, ref_name = ls1.per_stream_tps, "llama-server's one stream"
        ratio = p1.per_stream_tps / ref if ref else 0
        also = f", llama-server's one stream {ls1.per_stream_tps:.1f}" if ls1 else ""
        lines.append(
            f"- 1 stream >= 0.95x raw llama.cpp: {name} {p1.per_stream_tps:.1f} tok/s vs raw {raw:.1f}{also}; "
            f"against {ref_name} **{ratio:.2f}x** ({'met' if ratio >= 0.95 else 'missed'})."
        )
    for conc in (8, 32):
        peers = [r for (n, c), r in by.items() if c == conc and not n.startswith("plinth") and r.requests]
        best = max(peers, key=lambda r: r.aggregate_tps) if peers else None
        for name in ours:
            mine = by.get((name, conc))
            if mine and best:
                ratio = mine.aggregate_tps / best.aggregate_tps if best.aggregate_tps else float("inf")
                lines.append(
                    f"- {conc} concurrent >= 2x the best peer: {name} {mine.aggregate_tps:.1f} vs {best.engine} "
                    f"{best.aggregate_tps:.1f} tok/s = **{ratio:.2f}x** ({'met' if ratio >= 2 else 'missed'})."
                )
    for name in ours:
        p8 = by.get((name, 8))
        if p8:
            lines.append(f"- TTFT p50 <= 0.5 s at 8: {name} {p8.ttft_p50:.2f} s ({'met' if p8.ttft_p50 <= 0.5 else 'missed'}).")
    for name in ours:
        p32 = by.get((name, 32))
        if p32:
            lines.append(
                f"- 32 concurrent: {name} {p32.errors} errors, peak RSS {p32.peak_rss_mb:.0f} MB "
                f"({'met' if p32.errors == 0 else 'missed'})."
            )
    for name, lr in lora.items():
        lines.append(
            f"- 8 concurrent on 8 different adapters >= 0.7x the same load on the base: {name} {lr['adapters_tps']:.1f} vs "
            f"{lr['base_tps']:.1f} tok/s = **{lr['ratio']:.2f}x** ({'met' if lr['ratio'] >= 0.7 else 'missed'}); "
            f"{int(lr['errors'])} errors."
        )
    if soak is not None:
        lines += soak_lines(soak)
    lines += [""]
    if costs:
        lines += [
            "## What llama.cpp's calls cost here (tight loop, no server, same threads)",
            "",
            (
                f"One `llama_decode` of 1 sequence: {costs['decode_1_ms']:.1f} ms; of 8 sequences (ids 0-7 in order): "
                f"{costs['decode_8_ms']:.1f} ms ({costs['decode_8_ms'] / costs['decode_1_ms']:.1f}x one sequence, "
                f"{costs['decode_8_ms'] / 8:.1f} ms per token); the same 8 out of id order: {costs['decode_8_unordered_ms']:.1f} ms "
                f"(llama.cpp splits the batch into one ubatch per run of consecutive ids, each a pass over the weights). "
                f"One `llama_sampler_sample` (temperature, seeded draw over the 49k vocabulary): {costs['sample_ms']:.2f} ms. "
                "Lower quartiles of interleaved rounds."
            ),
            "",
        ]
    if costs and costs.get("formats"):
        lines += format_lines(costs["formats"])  # type: ignore[arg-type]
    if profile is not None:
        lines += profile_lines(profile)
    lines += [ANALYSIS]
    print("\n".join(lines))
    data = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in args.items()},
        "bandwidth_gbs": bw,
        "raw_single_stream_tps": raw,
        "levels": [asdict(r) for r in results],
        "lora": lora,
        "profile": profile,
        "soak": soak,
        "llamacpp_call_costs_ms": costs,
        "load_avg": run_load,
        "versions": {**earlier.get("versions", {}), **{e.name: e.version for e in engines if e.version}},
        "weights": weights,
        "engine_notes": notes,
    }
    if appended:
        data["appended"] = appended
        data["measured_at"] = appended["at"]
    if results_dir is None:
        print("(--quick: no results written; give --results-dir to write them)")
        return
    write_results("serving", facts, "\n".join(lines), data, results_dir)


if __name__ == "__main__":
    main()
