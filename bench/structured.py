"""Structured outputs benchmark: validity of json_schema answers and the cost of constrained decoding.

For each engine (llama.cpp, the default; torch), a live `plinth up` serves the embedded model
(PLINTH_EMBEDDED_RUNTIME picks the engine) and the official openai client sends:

1. **Validity**: 20 JSON schemas x N prompts, each once non-streamed and once streamed, 8 at a
   time, sampled (temperature 0.8, a seed per request) with response_format json_schema
   (strict). An answer counts as valid when it finished with "stop", parses as JSON and
   validates against its schema (jsonschema); answers cut by max_tokens are counted apart,
   as are errors. Target: 100% valid.
2. **Decode overhead**: per-token decode time ((last content chunk - first content chunk) /
   (completion tokens - 1)) of streamed greedy requests with a JSON schema against the same
   requests without one, at 1 and 8 concurrent streams. Target: constrained / unconstrained
   at most 1.2.
3. With ``--libraries``: the per-token mask time of the candidate libraries for the torch
   engine (llguidance, xgrammar, outlines-core; they must be installed) on the SmolLM2
   vocabulary (49,152 tokens), over constrained random walks whose answers are validated.

Run:  .venv/bin/python bench/structured.py [--quick] [--engines llamacpp,torch] [--prompts 10]
      [--torch-prompts 2] [--libraries] [--skip-engines] [--keep-previous] [--results-dir DIR]
Writes bench/results/structured-<cpu>.md and .json (<cpu> from bench/machine.py); a --quick
run writes nothing unless --results-dir is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from machine import add_results_args, describe, machine_line, results_dir_of, title, write_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.live_server import MODEL, start_server, stop_server  # noqa: E402

S = {"type": "string", "maxLength": 32}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required, "additionalProperties": False}


#: 20 schemas covering what structured outputs accept (strings bounded so answers end)
SCHEMAS: list[tuple[str, dict[str, Any]]] = [
    ("person", _obj({"name": S, "age": {"type": "integer"}})),
    ("city", _obj({"city": S, "country": S, "population": {"type": "integer"}, "coastal": {"type": "boolean"}})),
    ("tags", _obj({"title": S, "tags": {"type": "array", "items": S, "maxItems": 4}})),
    ("enum", _obj({"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}, "confidence": {"type": "number"}})),
    (
        "nested",
        _obj({"owner": _obj({"name": S, "email": S}), "pet": _obj({"kind": {"enum": ["cat", "dog", "fish"]}, "age": {"type": "integer"}})}),
    ),
    ("nullable", _obj({"name": S, "nickname": {"anyOf": [S, {"type": "null"}]}})),
    ("type-list", _obj({"value": {"type": ["integer", "null"]}, "unit": S})),
    ("optional", _obj({"name": S, "note": S, "score": {"type": "integer"}}, required=["name"])),
    ("array-root", {"type": "array", "items": _obj({"item": S, "qty": {"type": "integer"}}), "minItems": 1, "maxItems": 3}),
    (
        "defs",
        {**_obj({"home": {"$ref": "#/$defs/place"}, "work": {"$ref": "#/$defs/place"}}), "$defs": {"place": _obj({"street": S, "zip": S})}},
    ),
    ("date", _obj({"event": S, "day": {"type": "string", "format": "date"}})),
    ("uuid", _obj({"id": {"type": "string", "format": "uuid"}, "label": S})),
    ("pattern", _obj({"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"}, "name": S})),
    ("const", _obj({"version": {"const": 2}, "kind": {"const": "report"}, "summary": S})),
    ("tuple", _obj({"point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]}, "label": S})),
    ("booleans", _obj({"is_open": {"type": "boolean"}, "has_parking": {"type": "boolean"}, "name": S})),
    ("numbers", _obj({"min": {"type": "number"}, "max": {"type": "number"}, "mean": {"type": "number"}})),
    ("string-root", {"type": "string", "maxLength": 40}),
    ("recipe", _obj({"dish": S, "steps": {"type": "array", "items": S, "minItems": 1, "maxItems": 3}, "minutes": {"type": "integer"}})),
    ("colours", _obj({"colours": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 1, "maxItems": 3}})),
]
PROMPTS = [
    "Describe Paris.",
    "Tell me about your favourite animal.",
    "Summarise the weather today.",
    "Describe a shop in a small town.",
    "Give facts about the Moon.",
    "Describe a recipe for soup.",
    "Tell me about a famous painter.",
    "Describe a train journey.",
    "Give details of a meeting next week.",
    "Describe a football match.",
]
SYSTEM = "Answer only with JSON that fits the requested format."


def _fmt(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _classify(text: str, finish: str | None, schema: dict[str, Any]) -> str:
    import jsonschema

    if finish != "stop":
        return "cut" if finish == "length" else f"finish:{finish}"
    try:
        value = json.loads(text)
    except ValueError:
        return "unparsable"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return "invalid"
    return "valid"


def validity(client: Any, n_prompts: int, max_tokens: int) -> dict[str, Any]:
    jobs = [(si, pi, stream) for si in range(len(SCHEMAS)) for pi in range(n_prompts) for stream in (False, True)]

    def one(job: tuple[int, int, bool]) -> tuple[int, bool, str, str]:
        si, pi, stream = job
        name, schema = SCHEMAS[si]
        kw: dict[str, Any] = dict(
            model=MODEL,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPTS[pi % len(PROMPTS)]}],
            response_format=_fmt(name, schema),
            max_tokens=max_tokens,
            temperature=0.8,
            seed=si * 100 + pi,
        )
        try:
            if stream:
                text, finish = "", None
                for c in client.chat.completions.create(stream=True, **kw):
                    if c.choices:
                        text += c.choices[0].delta.content or ""
                        finish = c.choices[0].finish_reason or finish
            else:
                r = client.chat.completions.create(**kw)
                text, finish = r.choices[0].message.content or "", r.choices[0].finish_reason
        except Exception as e:  # counted, not fatal
            return si, stream, "error", f"{type(e).__name__}: {e}"[:200]
        return si, stream, _classify(text, finish, schema), text[:200]

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, jobs))
    out: dict[str, Any] = {"answers": len(results), "seconds": round(time.monotonic() - started, 1)}
    for stream in (False, True):
        key = "streamed" if stream else "non_streamed"
        mine = [r for r in results if r[1] == stream]
        counts: dict[str, int] = {}
        for r in mine:
            counts[r[2]] = counts.get(r[2], 0) + 1
        out[key] = {"answers": len(mine), "valid": counts.get("valid", 0), "outcomes": counts}
    out["failures"] = [{"schema": SCHEMAS[r[0]][0], "stream": r[1], "outcome": r[2], "text": r[3]} for r in results if r[2] != "valid"][:20]
    return out


def _stream_timing(client: Any, schema: dict[str, Any] | None, prompt: str, max_tokens: int) -> tuple[float, int] | None:
    kw: dict[str, Any] = dict(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    if schema is not None:
        kw["response_format"] = _fmt("timing", schema)
    first = last = None
    tokens = 0
    for c in client.chat.completions.create(**kw):
        now = time.perf_counter()
        if c.choices and c.choices[0].delta.content:
            first = first or now
            last = now
        if c.usage:
            tokens = c.usage.completion_tokens
    if first is None or last is None or tokens < 8:
        return None
    return (last - first) / (tokens - 1), tokens


def overhead(client: Any, rounds: int, max_tokens: int) -> dict[str, Any]:
    """Rounds alternate unconstrained and constrained, so a change in the machine's load hits both."""
    schema = SCHEMAS[1][1]
    out: dict[str, Any] = {}
    for conc in (1, 8):
        per_token: dict[str, list[float]] = {"unconstrained": [], "constrained": []}
        tokens: dict[str, list[int]] = {"unconstrained": [], "constrained": []}
        for r in range(rounds):
            prompts = [PROMPTS[(r * conc + i) % len(PROMPTS)] for i in range(conc)]
            for label, sch in (("unconstrained", None), ("constrained", schema)):
                with ThreadPoolExecutor(conc) as pool:
                    got = list(pool.map(lambda p, s=sch: _stream_timing(client, s, p, max_tokens), prompts))
                for g in got:
                    if g is not None:
                        per_token[label].append(g[0])
                        tokens[label].append(g[1])
        row: dict[str, Any] = {
            label: {
                "ms_per_token_median": round(statistics.median(per_token[label]) * 1000, 2) if per_token[label] else None,
                "streams": len(per_token[label]),
                "tokens_median": statistics.median(tokens[label]) if tokens[label] else None,
            }
            for label in per_token
        }
        u, c = row["unconstrained"]["ms_per_token_median"], row["constrained"]["ms_per_token_median"]
        row["ratio"] = round(c / u, 3) if u and c else None
        out[f"concurrency_{conc}"] = row
    return out


def run_engine(engine: str, n_prompts: int, rounds: int, max_tokens: int, threads: int) -> dict[str, Any]:
    from openai import OpenAI

    home = Path(tempfile.mkdtemp(prefix=f"plinth-structured-{engine}-"))
    server = start_server(
        home,
        PLINTH_EMBEDDED_RUNTIME=engine,
        PLINTH_MAX_BATCH_SIZE="8",
        PLINTH_CONTEXT_LENGTH="2048",
        PLINTH_THREADS=str(threads),
        PLINTH_QUEUE_TIMEOUT_S="600",
        PLINTH_MAX_QUEUED_PER_MODEL="64",
    )
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=600)
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)  # load the model
        print(f"[{engine}] validity: {len(SCHEMAS)} schemas x {n_prompts} prompts, streamed and not", flush=True)
        v = validity(client, n_prompts, max_tokens)
        print(f"[{engine}] {json.dumps({k: v[k] for k in ('non_streamed', 'streamed')})}", flush=True)
        print(f"[{engine}] decode overhead, {rounds} rounds", flush=True)
        o = overhead(client, rounds, 64)
        print(f"[{engine}] {json.dumps(o)}", flush=True)
        return {"validity": v, "overhead": o, "schemas": len(SCHEMAS), "prompts": n_prompts}
    finally:
        stop_server(server)


# -- libraries for the torch engine -----------------------------------------------------------
def libraries(walks: int = 10, max_steps: int = 200) -> dict[str, Any]:
    """Per-token mask time and validity of random walks under each library's mask."""
    import hashlib

    import jsonschema
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from plinth.formats import locate_embedded_gguf
    from plinth.runtimes import torch_llama as tl
    from plinth.runtimes.torch_gguf import dequantised_dir

    gguf = locate_embedded_gguf()
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    cache = Path(tempfile.gettempdir()) / "plinth-bench-structured"
    model_dir = dequantised_dir(gguf, cache, digest=digest, dtype_name=str(tl.pick_dtype("cpu")).replace("torch.", ""))
    hf = AutoTokenizer.from_pretrained(str(model_dir))
    vocab = len(hf)
    eos = hf.eos_token_id
    lens = np.array([len(hf.decode([i])) for i in range(vocab)])
    bonus = torch.tensor(np.where(lens <= 2, 3.0, 0.0), dtype=torch.float32)  # short tokens: walks reach the end
    schemas = [s for _, s in SCHEMAS[:8]]

    def walk(mask: Any, accept: Any, seed: int) -> tuple[list[int], list[float], bool]:
        gen = torch.Generator().manual_seed(seed)
        toks: list[int] = []
        times: list[float] = []
        for _ in range(max_steps):
            logits = torch.randn(vocab, generator=gen) * 2 + bonus
            t0 = time.perf_counter()
            mask(logits)
            times.append(time.perf_counter() - t0)
            t = int(torch.argmax(logits))
            if t == eos:
                return toks, times, True
            accept(t)
            toks.append(t)
        return toks, times, False

    def judge(toks: list[int], finished: bool, schema: dict[str, Any]) -> str:
        if not finished:
            return "unfinished"
        try:
            jsonschema.validate(json.loads(hf.decode(toks)), schema)
            return "valid"
        except (ValueError, jsonschema.ValidationError):
            return "invalid"

    def llguidance_lib() -> Any:
        import llguidance
        import llguidance.hf

        from plinth.runtimes.torch_engine import mask_logits

        tok = llguidance.hf.from_tokenizer(hf, n_vocab=vocab, eos_token=eos)

        def make(schema: dict[str, Any]) -> tuple[Any, Any, Any]:
            m = llguidance.LLMatcher(tok, llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False}))
            return m, (lambda logits: mask_logits(m, logits)), (lambda t: m.consume_token(t))

        return make

    def xgrammar_lib() -> Any:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=vocab, stop_token_ids=[eos])
        compiler = xgr.GrammarCompiler(info, max_threads=1)

        def make(schema: dict[str, Any]) -> tuple[Any, Any, Any]:
            m = xgr.GrammarMatcher(compiler.compile_json_schema(json.dumps(schema), any_whitespace=False))
            bm = xgr.allocate_token_bitmask(1, vocab)

            def mask(logits: Any) -> None:
                m.fill_next_token_bitmask(bm)
                xgr.apply_token_bitmask_inplace(logits, bm)

            return m, mask, (lambda t: m.accept_token(t))

        return make

    def outlines_lib() -> Any:
        from outlines_core import Guide, Index, Vocabulary
        from outlines_core.json_schema import build_regex_from_schema

        table: dict[str, list[int]] = {}
        for i in range(vocab):
            if i != eos:
                table.setdefault(hf.convert_ids_to_tokens(i), []).append(i)
        voc = Vocabulary(eos, table)

        def make(schema: dict[str, Any]) -> tuple[Any, Any, Any]:
            g = Guide(Index(build_regex_from_schema(json.dumps(schema)), voc))
            blocked = torch.ones(vocab, dtype=torch.bool)

            def mask(logits: Any) -> None:
                blocked.fill_(True)
                blocked[torch.tensor(g.get_tokens())] = False
                logits.masked_fill_(blocked, float("-inf"))

            return g, mask, (lambda t: g.advance(t))

        return make

    out: dict[str, Any] = {"vocab": vocab, "schemas": len(schemas), "walks_per_schema": walks}
    for name, lib in (("llguidance", llguidance_lib), ("xgrammar", xgrammar_lib), ("outlines-core", outlines_lib)):
        try:
            t0 = time.perf_counter()
            make = lib()
            setup = time.perf_counter() - t0
        except Exception as e:  # not installed, or failed: reported
            out[name] = {"error": f"{type(e).__name__}: {e}"[:200]}
            continue
        compile_ms: list[float] = []
        times: list[float] = []
        outcomes: dict[str, int] = {}
        for schema in schemas:
            for w in range(walks):
                t0 = time.perf_counter()
                try:
                    _, mask, accept = make(schema)
                except Exception as e:  # a schema the library refuses
                    outcomes["compile_error"] = outcomes.get("compile_error", 0) + 1
                    out.setdefault(f"{name}_errors", []).append(str(e)[:120])
                    break
                compile_ms.append((time.perf_counter() - t0) * 1000)
                toks, tm, finished = walk(mask, accept, seed=w)
                times += tm
                res = judge(toks, finished, schema)
                outcomes[res] = outcomes.get(res, 0) + 1
        out[name] = {
            "tokenizer_setup_s": round(setup, 2),
            "compile_ms_median": round(statistics.median(compile_ms), 2) if compile_ms else None,
            "mask_us_median": round(statistics.median(times) * 1e6, 1) if times else None,
            "mask_us_p90": round(float(np.percentile(times, 90)) * 1e6, 1) if times else None,
            "steps": len(times),
            "outcomes": outcomes,
        }
        print(f"[libraries] {name}: {json.dumps(out[name])}", flush=True)
    return out


def render(m: dict[str, Any], data: dict[str, Any]) -> str:
    lines = [title("Structured outputs", m), "", machine_line(m), ""]
    for engine, r in data["engines"].items():
        v = r["validity"]
        lines += [
            f"## {engine}",
            "",
            f"Validity: {r['schemas']} schemas x {r['prompts']} prompts, sampled (temperature 0.8), {v['seconds']} s",
            "",
        ]
        lines += ["| mode | answers | valid | outcomes |", "|---|---|---|---|"]
        for key in ("non_streamed", "streamed"):
            x = v[key]
            share = 100 * x["valid"] / max(x["answers"], 1)
            lines.append(f"| {key.replace('_', '-')} | {x['answers']} | {x['valid']} ({share:.1f}%) | {x['outcomes']} |")
        lines += ["", "Per-token decode time, greedy, streamed (median over streams):", ""]
        lines += ["| concurrency | unconstrained ms/token | constrained ms/token | ratio |", "|---|---|---|---|"]
        for conc, row in r["overhead"].items():
            u, c = row["unconstrained"], row["constrained"]
            lines.append(f"| {conc.split('_')[1]} | {u['ms_per_token_median']} | {c['ms_per_token_median']} | {row['ratio']} |")
        if v["failures"]:
            lines += ["", "Answers that were not valid (first 20):", ""]
            lines += [
                f"- {f['schema']} ({'streamed' if f['stream'] else 'non-streamed'}): {f['outcome']}: `{f['text'][:120]}`"
                for f in v["failures"]
            ]
        lines.append("")
    if "libraries" in data:
        lib = data["libraries"]
        lines += [
            "## Candidate libraries for the torch engine",
            "",
            (
                f"Random walks (random logits, short tokens favoured) under each library's mask on the SmolLM2 vocabulary "
                f"({lib['vocab']} tokens), {lib['schemas']} schemas x {lib['walks_per_schema']} walks; mask time = compute the "
                "allowed set and apply it to one logits row."
            ),
            "",
            "| library | tokenizer setup s | compile ms (median) | mask us (median) | mask us (p90) | outcomes |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("llguidance", "xgrammar", "outlines-core"):
            x = lib.get(name, {})
            if "error" in x:
                lines.append(f"| {name} | {x['error']} | | | | |")
            else:
                cells = [x["tokenizer_setup_s"], x["compile_ms_median"], x["mask_us_median"], x["mask_us_p90"], x["outcomes"]]
                lines.append(f"| {name} | " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 prompts, 1 round (a smoke run)")
    ap.add_argument("--engines", default="llamacpp,torch")
    ap.add_argument("--prompts", type=int, default=10, help="prompts per schema on llama.cpp")
    ap.add_argument("--torch-prompts", type=int, default=2, help="prompts per schema on torch (slower on a CPU)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the decode-overhead measurement")
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--libraries", action="store_true", help="also compare llguidance, xgrammar and outlines-core")
    ap.add_argument("--skip-engines", action="store_true", help="only the library comparison")
    ap.add_argument("--keep-previous", action="store_true", help="keep the results file's engines and libraries this run does not measure")
    add_results_args(ap)
    args = ap.parse_args()
    m = describe()
    data: dict[str, Any] = {"engines": {}}
    if not args.skip_engines:
        for engine in args.engines.split(","):
            n = 2 if args.quick else (args.prompts if engine == "llamacpp" else args.torch_prompts)
            data["engines"][engine] = run_engine(engine, n, 1 if args.quick else args.rounds, args.max_tokens, args.threads)
    if args.libraries:
        data["libraries"] = libraries()
    out = results_dir_of(args)
    if args.keep_previous and out is not None:  # what this run did not measure comes from the last run's file
        previous = out / f"structured-{m['slug']}.json"
        if previous.exists():
            old = json.loads(previous.read_text())
            data["engines"] = {**old.get("engines", {}), **data["engines"]}
            if "libraries" not in data and "libraries" in old:
                data["libraries"] = old["libraries"]
    md = render(m, data)
    print(md)
    if out is not None:
        write_results("structured", m, md, data, out)


if __name__ == "__main__":
    main()
