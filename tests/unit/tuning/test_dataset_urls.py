"""Dataset versions from URLs, through the outbound fetcher, against a real local server: the
format from the content type or the URL, the URL as the version's source (lineage), the
dataset size limit, and refusals before anything is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from plinth.errors import ErrorCode, PlinthError
from tests.support.http_targets import Answer, redirect, serve, text

ROWS = [{"messages": [{"role": "user", "content": f"question {i}?"}, {"role": "assistant", "content": f"answer {i}."}]} for i in range(20)]
JSONL = "".join(json.dumps(r) + "\n" for r in ROWS)
CSV = "prompt,completion\n" + "".join(f"q{i},a{i}\n" for i in range(10))


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from plinth.config import load_settings
    from plinth.services import build_services

    home = tmp_path_factory.mktemp("home")
    svc = build_services(load_settings(home=home, dataset_max_bytes=4096, outbound_allow=["127.0.0.1"], jobs_local_worker=False))
    try:
        yield svc
    finally:
        svc.close()


def test_a_version_from_a_url_records_the_url(services: Any) -> None:
    routes = {
        "/faq.jsonl": text(JSONL, "application/octet-stream"),
        "/export": text(CSV, "text/csv; charset=utf-8"),
        "/latest": redirect("/faq.jsonl"),
    }
    with serve(routes) as site:
        v, created = services.datasets.add_url(site.url("/faq.jsonl"), "faq", validation_fraction=0.2)
        assert created and v.rows == 20 and v.source_name == site.url("/faq.jsonl") and v.validation_rows == 4
        again, created = services.datasets.add_url(site.url("/latest"), "faq", validation_fraction=0.2)
        assert not created and again.version == v.version  # same rows, same split: no new version
        c, created = services.datasets.add_url(site.url("/export"), "pairs")  # CSV by its content type, no extension
        assert created and c.rows == 10 and c.source_format.value == "csv"


def test_refusals_store_nothing(services: Any) -> None:
    with serve({"/big.jsonl": lambda _s: Answer(200, (JSONL * 3).encode(), "application/x-ndjson")}) as site:
        with pytest.raises(PlinthError) as e:
            services.datasets.add_url(site.url("/big.jsonl"), "big")
        assert e.value.code is ErrorCode.PAYLOAD_TOO_LARGE and "PLINTH_DATASET_MAX_BYTES" in e.value.message
    for url, words in [
        ("http://169.254.169.254/latest/user-data", "never fetched"),
        ("http://[::1]/x.jsonl", "loopback"),
        ("http://192.168.0.10/x.jsonl", "private"),
        ("http://user@127.0.0.1/x.jsonl", "user information"),
    ]:
        with pytest.raises(PlinthError) as e:
            services.datasets.add_url(url, "refused")
        assert e.value.http_status == 400 and words in e.value.message and e.value.param == "url", url
    names = [d.name for d, _v in services.datasets.list()]
    assert "big" not in names and "refused" not in names


def test_a_url_longer_than_the_source_field_is_refused(services: Any) -> None:
    with pytest.raises(PlinthError, match="at most 512 characters"):
        services.datasets.add_url("http://127.0.0.1/" + "a" * 600, "long")


def test_errors_name_no_server_path(services: Any) -> None:
    with serve({"/bad.jsonl": text("{not json\n", "application/x-ndjson")}) as site, pytest.raises(PlinthError) as e:
        services.datasets.add_url(site.url("/bad.jsonl"), "bad")
    assert "'bad.jsonl'" in e.value.message and "line 1" in e.value.message  # the URL's file, not a temp name
    assert str(services.settings.home) not in e.value.message
