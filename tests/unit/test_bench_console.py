"""bench/console.py at a tiny scale: the seeding works through the real services and every
console page it finds answers (the benchmark itself runs with `make bench-console`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def bench_console() -> ModuleType:
    sys.path.insert(0, str(REPO / "bench"))  # the benchmark imports bench/machine.py as `machine`
    try:
        spec = importlib.util.spec_from_file_location("bench_console", REPO / "bench" / "console.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # its dataclasses look their module up there
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(REPO / "bench"))


def test_value_for_fills_path_parameters_from_the_seeded_ids() -> None:
    c = bench_console()
    ids = {"run": "r1", "pipeline_run": "p1", "deployment": "dep", "kb": "kb1", "pipeline_step": "data", "registry": "reg"}
    assert c.value_for("run_id", ["console", "runs"], ids) == "r1"
    assert c.value_for("run_id", ["console", "pipelines", "runs"], ids) == "p1"
    assert c.value_for("step", ["console", "pipelines", "runs", "steps"], ids) == "data"
    assert c.value_for("name", ["console", "deployments"], ids) == "dep"
    assert c.value_for("name", ["console", "knowledge"], ids) == "kb1"
    assert c.value_for("name", ["console", "models"], ids) == c.BASE
    assert c.value_for("version", ["console", "registry", "reg"], ids) == "1"
    assert c.value_for("name", ["console", "nothing-known"], ids) is None


@pytest.mark.slow
def test_tiny_run_seeds_and_measures_every_console_page(tmp_path: Path) -> None:
    c = bench_console()
    result = c.run(c.Scale().scaled(0.002), 1)
    counts = result["seeded"]["counts"]
    assert counts["runs"] >= 2 and counts["request_log"] >= 2 and counts["metric_points"] >= 2
    assert not {"runs", "metrics", "request_log"} & set(result["seeded"]["skipped"])
    assert result["pages"], "no console page was found"
    bad = [(p["url"], p["status"]) for p in result["pages"] if p["status"] != 200]
    assert bad == []
    md = c.write_md({"measured_at": "now", "machine": c.describe(with_torch=False), **result})
    assert "| page | status |" in md and result["pages"][0]["url"] in md
