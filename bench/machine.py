"""The machine a benchmark ran on, and where its results go (shared by every script in bench/).

This project's machines differ from session to session: AMD EPYC Zen 1 (AVX2 only), AMD EPYC
Zen 5 (AVX-512 with AVX512-BF16, no AMX), Intel Xeon (AMX and bf16). The torch runtime
computes in bf16 where the CPU has AVX512-BF16 or AMX and in fp32 elsewhere, and llama.cpp
picks its kernels by the same flags, so a number means little without the CPU it came from.

- ``describe()``: the CPU model, its vendor and family, the instruction-set flags that matter
  here, a short flags kind (``avx2``, ``avx512``, ``avx512-bf16``, ``amx-bf16``), a
  filename-safe slug of vendor, family and kind (``amd-epyc-avx2``, ``amd-epyc-avx512-bf16``,
  ``intel-xeon-amx-bf16``), cores, memory, Python, the torch version and the dtype plinth's
  torch runtime computes in on this CPU (``plinth.runtimes.torch_llama.pick_dtype("cpu")``).
- ``title()`` and ``machine_line()``: the first lines of every results Markdown file.
- ``write_results()``: writes ``bench/results/<bench>-<slug>.md`` and ``.json``, so runs on
  different CPU kinds sit side by side instead of overwriting each other, and rewrites the
  index ``bench/results/README.md`` (which CPU kinds have results for which benchmark, when)
  from the ``.json`` files there.

    .venv/bin/python bench/machine.py            # print this machine's description and results names
    .venv/bin/python bench/machine.py --index    # rewrite bench/results/README.md from the .json files
    .venv/bin/python bench/machine.py --self-check   # slugs of this project's CPU kinds; a write to a scratch folder
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# The instruction-set flags (as /proc/cpuinfo spells them) that decide which kernels torch
# (oneDNN, MKL) and llama.cpp use on this project's CPUs.
FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

# Flags kinds, most capable first, with what they mean for the numbers.
KINDS = {
    "amx-bf16": "AMX tiles with bf16 (Intel Xeon here): the torch runtime computes in bf16, its matmuls on oneDNN's AMX kernels",
    "avx512-bf16": "AVX-512 with AVX512-BF16, no AMX (AMD EPYC Zen 5 here): the torch runtime computes in bf16",
    "avx512": "AVX-512 without bf16: the torch runtime computes in fp32",
    "avx2": "AVX2, no AVX-512 (AMD EPYC Zen 1 here): the torch runtime computes in fp32",
    "baseline": "x86-64 without AVX2",
    "unknown-flags": "the run did not record its CPU's flags (see its note)",
}

VENDORS = {"genuineintel": "intel", "authenticamd": "amd", "hygongenuine": "hygon", "centaurhauls": "centaur"}
FAMILIES = ("xeon", "epyc", "threadripper", "ryzen", "opteron", "core", "pentium", "celeron", "atom", "neoverse", "graviton", "altra")
# Benchmarks in the order the index lists them; others follow by name.
BENCHES = ("serving", "tuning", "retrieval", "guardrails", "deployments")


# -- what the CPU is ---------------------------------------------------------------------------
def _fields(text: str) -> dict[str, str]:
    """``key: value`` lines of the first block (the first processor of /proc/cpuinfo, or lscpu)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def read_cpu(cpuinfo: str | None = None) -> dict[str, Any]:
    """Model name, vendor id and flags of this CPU: /proc/cpuinfo, else ``lscpu``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    f = _fields(cpuinfo)
    if not f.get("flags") and not f.get("features"):
        try:
            lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            lscpu = ""
        f = {**_fields(lscpu), **{k: v for k, v in f.items() if v}}
    return {
        "model": f.get("model name") or f.get("cpu model") or platform.processor() or "unknown CPU",
        "vendor_id": f.get("vendor_id") or f.get("vendor id") or "",
        "flags": set((f.get("flags") or f.get("features") or "").split()),
    }


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def vendor_of(vendor_id: str, model: str) -> str:
    if vendor_id.lower() in VENDORS:
        return VENDORS[vendor_id.lower()]
    words = slugify(model).split("-")
    for v in ("intel", "amd", "ampere", "apple", "arm"):
        if v in words:
            return v
    return slugify(vendor_id) or "unknown"


def family_of(model: str, vendor: str) -> str:
    words = [w for w in slugify(model.replace("(R)", " ").replace("(TM)", " ")).split("-") if w]
    for family in FAMILIES:
        if family in words:
            return family
    rest = [w for w in words if w not in {vendor, "r", "tm", "cpu", "processor", "genuine", "authentic", "unknown"}]
    return rest[0] if rest else "cpu"


def kind_of(flags: set[str] | frozenset[str], machine_arch: str | None = None) -> str:
    """The short flags kind: what decides the kernels and the torch runtime's dtype here."""
    if not flags:
        return "unknown-flags"
    if "amx_bf16" in flags:
        return "amx-bf16"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    arch = (machine_arch or platform.machine()).lower()
    if arch in {"aarch64", "arm64"}:
        return "arm64-bf16" if "bf16" in flags else "arm64"
    return "baseline"


def slug_of(vendor: str, family: str, kind: str) -> str:
    parts = [vendor] if family == vendor else [vendor, family]
    return slugify("-".join([*parts, kind]))


# -- what torch does on it ---------------------------------------------------------------------
DTYPE_NAMES = {"torch.bfloat16": "bf16", "torch.float32": "fp32", "torch.float16": "fp16"}
_PROBE = "import torch\nfrom plinth.runtimes.torch_llama import pick_dtype\nprint(torch.__version__)\nprint(pick_dtype('cpu'))\n"


def torch_dtype() -> tuple[str | None, str]:
    """(torch version, the dtype plinth's torch runtime computes in on this CPU).

    ``pick_dtype("cpu")`` is imported lazily: in this process where torch is already loaded,
    else in a child process, so that a benchmark which never uses torch (guardrails,
    retrieval, deployments) does not load it, its threads and its memory into what it measures.
    """
    if "torch" in sys.modules:
        try:
            if str(ROOT / "src") not in sys.path:
                sys.path.insert(0, str(ROOT / "src"))
            import torch

            from plinth.runtimes.torch_llama import pick_dtype

            return torch.__version__, DTYPE_NAMES.get(str(pick_dtype("cpu")), str(pick_dtype("cpu")))
        except Exception as e:  # a machine without the torch extra still gets described
            return None, f"unknown ({type(e).__name__})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)}
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, env=env)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"unknown ({type(e).__name__})"
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) < 2:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"unknown ({last[:80]})"
    return lines[0], DTYPE_NAMES.get(lines[1], lines[1])


def describe(*, with_torch: bool = True, cpuinfo: str | None = None) -> dict[str, Any]:
    """This machine, as every results file records it (JSON-ready)."""
    cpu = read_cpu(cpuinfo)
    vendor = vendor_of(cpu["vendor_id"], cpu["model"])
    family = family_of(cpu["model"], vendor)
    kind = kind_of(cpu["flags"])
    torch_version, dtype = torch_dtype() if with_torch else (None, "not checked")
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        memory = 0.0
    return {
        "cpu": cpu["model"],
        "vendor": vendor,
        "family": family,
        "kind": kind,
        "slug": slug_of(vendor, family, kind),
        "flags": [f for f in FLAGS if f in cpu["flags"]],
        "cores": os.cpu_count() or 0,
        "memory_gib": round(memory),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch_version,
        "dtype": dtype,
        "source": "recorded",  # read from this machine when the run started ("inferred" for older runs)
    }


# -- results files -----------------------------------------------------------------------------
def title(name: str, m: dict[str, Any]) -> str:
    """The first line of a results Markdown file: the CPU model, its flags kind and the dtype."""
    inferred = " (inferred)" if m.get("source") == "inferred" else ""
    return f"# {name} on {m['cpu']}: flags {m['kind']}{inferred}, torch dtype {m['dtype']}"


def machine_line(m: dict[str, Any]) -> str:
    """The paragraph under the title: everything describe() recorded, or how an older run's machine is known."""
    flags = m.get("flags")
    if flags is None:
        flag_text = "flags not recorded"
    else:
        missing = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f not in flags]
        flag_text = "flags " + (", ".join(flags) or "none of " + ", ".join(FLAGS))
        if missing and flags:
            flag_text += " (no " + ", ".join(missing) + ")"
    parts = [
        f"Machine: {m['cpu']}",
        f"{m['cores']} cores" if m.get("cores") else "cores not recorded",
        f"{m['memory_gib']} GiB RAM" if m.get("memory_gib") else "memory not recorded",
    ]
    text = ", ".join(parts) + f"; {flag_text} (kind `{m['kind']}`, results named `{m['slug']}`); "
    text += f"torch {m['torch']} computes in {m['dtype']} here" if m.get("torch") else f"torch dtype {m['dtype']}"
    text += f"; Python {m['python']}" if m.get("python") else ""
    text += f"; {m['platform']}." if m.get("platform") else "."
    if m.get("source") != "recorded":
        text += f" {m.get('note', 'How this machine is known is not recorded.')}"
    return text


def add_results_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="write <bench>-<cpu slug>.md/.json and the index there instead of bench/results/ (a --quick run writes nothing without it)",
    )


def results_dir_of(args: argparse.Namespace) -> Path | None:
    """Where this run's results go: --results-dir, else bench/results/, else nowhere for a --quick run."""
    if getattr(args, "results_dir", None) is not None:
        return Path(args.results_dir)
    return None if getattr(args, "quick", False) else RESULTS


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_results(bench: str, m: dict[str, Any], markdown: str, data: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write <bench>-<slug>.md and .json into results_dir (bench/results/) and rewrite its index."""
    out = results_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{bench}-{m['slug']}"
    payload = {"bench": bench, "measured_at": data.get("measured_at") or now_iso(), "machine": m}
    payload.update({k: v for k, v in data.items() if k not in payload})
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    write_index(out)
    print(f"wrote {out / stem}.md and .json, and {out / 'README.md'}", flush=True)
    return out / f"{stem}.md"


def _when(measured_at: str) -> str:
    try:
        t = dt.datetime.fromisoformat(measured_at)
    except ValueError:
        return measured_at or "?"
    if len(measured_at) <= 10:
        return t.strftime("%Y-%m-%d")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def runs_in(results_dir: Path) -> list[dict[str, Any]]:
    """The runs whose .json names its bench and a machine with a slug."""
    runs = []
    for p in sorted(results_dir.glob("*.json")):
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        m = d.get("machine") if isinstance(d, dict) else None
        if isinstance(m, dict) and m.get("slug") and d.get("bench"):
            runs.append({"bench": d["bench"], "machine": m, "measured_at": str(d.get("measured_at", "")), "stem": p.stem})
    order = {b: i for i, b in enumerate(BENCHES)}
    runs.sort(key=lambda r: (order.get(r["bench"], len(order)), r["bench"], r["machine"]["slug"]))
    return runs


def render_index(runs: list[dict[str, Any]]) -> str:
    slugs = sorted({r["machine"]["slug"] for r in runs})
    benches = list(dict.fromkeys(r["bench"] for r in runs))
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/machine.py` from the `.json` files in this folder: every benchmark run rewrites it",
        "(`.venv/bin/python bench/machine.py --index` does it by hand). Each run of `bench/<benchmark>.py` writes",
        "`<benchmark>-<cpu>.md` and `.json`, where `<cpu>` names the CPU's vendor, family and flags kind, so a run",
        "replaces only the last run of the same benchmark on the same kind of CPU. Each `.md` starts with a line",
        "naming the CPU model, its flags kind and the dtype plinth's torch runtime computes in on it; each `.json`",
        "records the machine under `machine`. The CPU of this project's machines changes from session to session,",
        "and the torch runtime computes in bf16 on `avx512-bf16` and `amx-bf16` CPUs and in fp32 elsewhere: compare",
        "numbers within one file, or across files of the same CPU kind.",
        "",
        "## Which CPU kinds have results",
        "",
        "| benchmark | " + " | ".join(f"`{s}`" for s in slugs) + " |",
        "|---|" + "---|" * len(slugs),
    ]
    for b in benches:
        cells = []
        for s in slugs:
            r = next((r for r in runs if r["bench"] == b and r["machine"]["slug"] == s), None)
            cells.append(f"[{_when(r['measured_at'])[:10]}]({r['stem']}.md)" if r else "-")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Runs",
        "",
        "| benchmark | CPU | flags kind | torch dtype | measured | files | how the machine is known |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        m = r["machine"]
        known = "recorded by the run" if m.get("source") == "recorded" else f"**{m.get('source', 'not recorded')}**: {m.get('note', '')}"
        lines.append(
            f"| {r['bench']} | {m.get('cpu', '?')} | `{m.get('kind', '?')}` | {m.get('dtype', '?')} | {_when(r['measured_at'])} | "
            f"[md]({r['stem']}.md), [json]({r['stem']}.json) | {known} |"
        )
    kinds = sorted({r["machine"].get("kind", "") for r in runs}, key=lambda k: list(KINDS).index(k) if k in KINDS else len(KINDS))
    lines += ["", "## Flags kinds", ""]
    lines += [f"- `{k}`: {KINDS.get(k, 'see the files')}." for k in kinds]
    return "\n".join(lines) + "\n"


def write_index(results_dir: Path | None = None) -> Path:
    out = results_dir or RESULTS
    path = out / "README.md"
    path.write_text(render_index(runs_in(out)))
    return path


# cpuinfo excerpts of this project's three CPU kinds, for --self-check
SAMPLES = {
    "amd-epyc-avx2": "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx fma avx2 bmi2\n",
    "amd-epyc-avx512-bf16": "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B45\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16\n",
    "intel-xeon-amx-bf16": (
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n"
        "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n\nprocessor\t: 1\nflags\t\t: sse2\n"
    ),
}


def self_check() -> None:
    """Slugs of the three CPU kinds from their cpuinfo, and a results write and index in a scratch folder."""
    import tempfile

    for slug, text in SAMPLES.items():
        got = describe(with_torch=False, cpuinfo=text)["slug"]
        assert got == slug, (slug, got)
    assert kind_of({"avx2", "avx512f"}) == "avx512" and kind_of(set()) == "unknown-flags"
    assert family_of("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "intel") == "xeon"
    with tempfile.TemporaryDirectory() as d:
        for slug, text in SAMPLES.items():
            m = describe(with_torch=False, cpuinfo=text)
            md = write_results("selfcheck", m, title("Self-check", m) + "\n\n" + machine_line(m), {"value": 1}, Path(d))
            assert md.name == f"selfcheck-{slug}.md" and md.read_text().startswith(f"# Self-check on {m['cpu']}: flags {m['kind']}")
        index = (Path(d) / "README.md").read_text()
        assert all(f"selfcheck-{slug}.md" in index for slug in SAMPLES), index
    print("bench/machine.py self-check passed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", action="store_true", help="rewrite the index README.md from the .json files and exit")
    ap.add_argument("--self-check", action="store_true", help="check the slugs of this project's CPU kinds and a results write, and exit")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--no-torch", action="store_true", help="do not ask torch which dtype it computes in")
    args = ap.parse_args()
    if args.self_check:
        self_check()
        return
    if args.index:
        print(f"wrote {write_index(args.results_dir)}")
        return
    m = describe(with_torch=not args.no_torch)
    print(json.dumps(m, indent=2))
    print(title("<benchmark>", m))
    print(machine_line(m))
    print(f"results: {args.results_dir}/<benchmark>-{m['slug']}.md and .json")


if __name__ == "__main__":
    main()
