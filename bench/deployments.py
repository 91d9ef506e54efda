"""Deployments benchmark: what routing, limits and usage accounting add to a request, and how
many reservations per second the store grants to one key under concurrency.

    python bench/deployments.py                # about two minutes; writes bench/results/deployments-<cpu>.{md,json}
    python bench/deployments.py --quick        # fewer iterations, no files written (unless --results-dir)
    PLINTH_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/deployments.py   # Postgres too

Measured in process, on the real CompletionService, engine and embedded model (max_tokens=1,
so generation is as small as it gets and the overhead as visible as it gets), interleaved in
rounds so that the machine's drift hits every variant alike:

- ``direct``: the model id, no hooks at all (what serving costs without this layer);
- ``deployment``: the deployment name: routing, headers, usage record;
- ``deployment + key``: the same with an API key with limits: a reservation before the
  generation slot and its settlement (SQLite; and Postgres when a URL is given).

And the store alone: reservations + settlements per second for one key from 1, 4 and 16
threads (each one a transaction under the key's row lock). Nothing is asserted.

<cpu> is this CPU's slug from bench/machine.py (e.g. deployments-amd-epyc-avx2.md); each run
also rewrites the index bench/results/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import add_results_args, describe, machine_line, results_dir_of, title, write_results

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
BASE = "smollm2-135m-instruct"


def _pg_database(admin_url: str) -> tuple[str, Any]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from plinth.store.sql import normalize_url

    name = f"plinth_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False), drop


def _services(home: Path, database_url: str | None) -> Any:
    from plinth.config import load_settings
    from plinth.services import build_services

    s = build_services(load_settings(home=home, database_url=database_url, threads=1, context_length=1024, max_batch_size=4))
    s.catalog.ensure_embedded()
    s.deployments.create("bench-bot", [{"model": BASE}], actor="bench")
    return s


async def _one(s: Any, model: str, principal: Any) -> float:
    from plinth.auth.context import CallInfo, current_call
    from plinth.serving.protocol import ChatCompletionRequest

    token = current_call.set(CallInfo(principal=principal)) if principal is not None else None
    try:
        req = ChatCompletionRequest(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=1, temperature=0.0)
        t0 = time.perf_counter()
        job = await s.completions.start_chat(req)
        try:
            await job.collect()
        finally:
            job.close()
        return time.perf_counter() - t0
    finally:
        if token is not None:
            current_call.reset(token)


def end_to_end(s: Any, rounds: int, per_round: int) -> dict[str, dict[str, float]]:
    from plinth.auth.service import make_limits

    _, key = s.auth.create_key(
        f"bench-{uuid.uuid4().hex[:6]}", scopes=["inference"], actor="bench", limits=make_limits(10**9, 10**12, 10**12, "month")
    )
    principal = s.auth.authenticate(key)
    hooks = list(s.completions.hooks)
    variants = {"direct": (BASE, [], None), "deployment": ("bench-bot", hooks, None), "deployment + key": ("bench-bot", hooks, principal)}
    times: dict[str, list[float]] = {k: [] for k in variants}

    async def run() -> None:
        await _one(s, BASE, None)  # load the model
        for _ in range(rounds):
            for name, (model, hk, p) in variants.items():
                s.completions.hooks[:] = hk
                for _ in range(per_round):
                    times[name].append(await _one(s, model, p))
        s.completions.hooks[:] = hooks

    asyncio.run(run())
    s.usage_writer.flush()
    base = statistics.median(times["direct"])
    return {
        k: {
            "n": len(v),
            "p50_ms": round(statistics.median(v) * 1000, 2),
            "p90_ms": round(sorted(v)[int(0.9 * len(v))] * 1000, 2),
            "added_p50_ms": round((statistics.median(v) - base) * 1000, 2),
        }
        for k, v in times.items()
    }


def reservations(s: Any, threads: int, seconds: float) -> dict[str, float]:
    from plinth.domain.auth import ApiKey, Limits, Scope

    key = s.store.create_api_key(
        ApiKey(
            id=uuid.uuid4().hex[:12],
            name=f"r-{uuid.uuid4().hex[:6]}",
            scopes=frozenset({Scope.INFERENCE}),
            limits=Limits(tokens_per_minute=10**12, budget_tokens=10**12),
        ),
        "0" * 64,
    )
    done = [0] * threads
    lat: list[float] = []
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            r = s.store.reserve(key.id, requests=1, tokens=100, now=datetime.now(UTC))
            lat.append(time.perf_counter() - t0)
            s.store.settle(r, tokens=60)
            done[i] += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    window = s.store.key_windows(key.id, now=datetime.now(UTC))
    n = sum(done)
    return {
        "threads": threads,
        "reserve_and_settle_per_s": round(n / elapsed, 1),
        "reserve_p50_ms": round(statistics.median(lat) * 1000, 2),
        "reserve_p99_ms": round(sorted(lat)[int(0.99 * len(lat))] * 1000, 2),
        "exact": window.budget_tokens_used == 60 * n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer iterations; writes nothing unless --results-dir is given")
    add_results_args(ap)
    args = ap.parse_args()
    facts = describe()
    print(machine_line(facts), flush=True)
    rounds, per_round, seconds = (2, 5, 1.0) if args.quick else (6, 15, 4.0)
    backends: list[tuple[str, str | None, Any]] = [("sqlite", None, None)]
    pg = os.environ.get("PLINTH_TEST_DATABASE_URL")
    if pg:
        url, drop = _pg_database(pg)
        backends.append(("postgres", url, drop))
    out: dict[str, Any] = {
        "machine": facts,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backends": {},
    }
    for name, url, drop in backends:
        with tempfile.TemporaryDirectory() as tmp:
            s = _services(Path(tmp), url)
            try:
                print(f"[{name}] end to end ...", flush=True)
                e2e = end_to_end(s, rounds, per_round)
                print(f"[{name}] reservations ...", flush=True)
                store = [reservations(s, t, seconds) for t in (1, 4, 16)]
            finally:
                s.close()
                if drop is not None:
                    drop()
        out["backends"][name] = {"end_to_end": e2e, "reservations": store}
        print(json.dumps(out["backends"][name], indent=1))
    results_dir = results_dir_of(args)
    if results_dir is None:
        return
    lines = [
        title("Deployments benchmark", facts),
        "",
        machine_line(facts),
        "",
        (
            f"Measured {out['measured_at']}{' (--quick)' if args.quick else ''} on {facts['cores']} CPUs, "
            "shared with other work; `python bench/deployments.py`."
        ),
        "",
        "## What a request pays (in process, max_tokens=1, embedded model)",
        "",
        "| store | variant | requests | p50 | p90 | added p50 vs direct |",
        "|---|---|---|---|---|---|",
    ]
    for b, r in out["backends"].items():
        for v, x in r["end_to_end"].items():
            lines.append(f"| {b} | {v} | {x['n']} | {x['p50_ms']} ms | {x['p90_ms']} ms | {x['added_p50_ms']:+} ms |")
    lines += [
        "",
        "## Reservations for one key (reserve + settle, each a transaction under the key's row lock)",
        "",
        "| store | threads | per second | reserve p50 | reserve p99 | counters exact |",
        "|---|---|---|---|---|---|",
    ]
    for b, r in out["backends"].items():
        for x in r["reservations"]:
            lines.append(
                f"| {b} | {x['threads']} | {x['reserve_and_settle_per_s']} | {x['reserve_p50_ms']} ms | "
                f"{x['reserve_p99_ms']} ms | {'yes' if x['exact'] else 'NO'} |"
            )
    write_results("deployments", facts, "\n".join(lines), out, results_dir)


if __name__ == "__main__":
    main()
