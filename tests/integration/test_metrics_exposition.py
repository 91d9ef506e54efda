"""``/metrics`` passes ``promtool check metrics`` (Prometheus' own lint) and clients cannot mint
label values: any HTTP method outside the standard ones is counted as ``other`` and any path no
route matches as ``<unmatched>``.

promtool comes from the Debian package ``prometheus`` (``.ci/run`` installs it). Without it the
lint tests are skipped with the reason, except where PLINTH_REQUIRE_PROMTOOL is set (CI): there
a missing promtool fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from plinth.api.middleware import KNOWN_METHODS
from plinth.monitoring.metrics import Metrics
from tests.support.live_server import LiveServer


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("PLINTH_REQUIRE_PROMTOOL"):
            pytest.fail("PLINTH_REQUIRE_PROMTOOL is set but promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian package prometheus); the exposition lint is skipped")
    return path


def lint(text: str) -> None:
    proc = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"promtool check metrics (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"


def label_values(text: str, label: str) -> set[str]:
    return {s.labels[label] for family in text_string_to_metric_families(text) for s in family.samples if label in s.labels}


def test_odd_methods_and_paths_do_not_mint_label_values(live_server: LiveServer) -> None:
    tag = uuid.uuid4().hex[:8]
    for i in range(5):
        httpx.request(f"FOOBAR{i}{tag.upper()}", f"{live_server.url}/healthz", timeout=10)
        httpx.get(f"{live_server.url}/no/such/path/{tag}/{i}", timeout=10)
    text = httpx.get(f"{live_server.url}/metrics", timeout=10).text
    assert "FOOBAR" not in text and tag not in text
    methods = label_values(text, "method")
    assert "other" in methods and methods <= KNOWN_METHODS | {"other"}, methods
    routes = label_values(text, "route")
    assert "<unmatched>" in routes and all(r.startswith("/") or r == "<unmatched>" for r in routes), routes


def test_the_live_exposition_passes_promtool(live_server: LiveServer) -> None:
    httpx.get(f"{live_server.url}/healthz", timeout=10)
    lint(httpx.get(f"{live_server.url}/metrics", timeout=10).text)


def test_every_declared_metric_passes_promtool_with_samples() -> None:
    """Each metric with one sample (families without samples show only their names)."""
    m = Metrics()
    for collector in list(m.registry._collector_to_names):
        names = getattr(collector, "_labelnames", ())
        child = collector.labels(*["x"] * len(names)) if names else collector
        if hasattr(child, "observe"):
            child.observe(1.0)
        elif hasattr(child, "inc"):
            child.inc()
    text = m.render().decode()
    assert "plinth_knowledge_base_searches_total" in text and "plinth_stream_errors_total" in text
    lint(text)
