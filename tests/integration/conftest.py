"""Integration fixtures: one live plinth server subprocess shared by the session.

It runs the real CLI (`python -m plinth up`) on a free port with a fresh PLINTH_HOME and the
real embedded model, configured with small limits so back-pressure and size limits can be
provoked quickly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.live_server import LiveServer, start_server, stop_server


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("plinth-home")
    server = start_server(
        home,
        PLINTH_MAX_QUEUED_PER_MODEL="3",
        PLINTH_MAX_BATCH_SIZE="4",
        PLINTH_MAX_BODY_BYTES=str(256 * 1024),
        PLINTH_CONTEXT_LENGTH="2048",
        PLINTH_MAX_TOKENS_LIMIT="1536",
        PLINTH_MAX_N="4",
        PLINTH_QUEUE_TIMEOUT_S="120",
        # Remote engines in these tests are fakes (and the server itself) on 127.0.0.1: allowed
        # explicitly, as an operator would; without it they are refused (test_outbound.py, ADR 0080).
        PLINTH_OUTBOUND_ALLOW='["127.0.0.1"]',
        # a browser app on another origin may call the API (test_request_headers.py)
        PLINTH_CORS_ALLOW_ORIGINS='["http://app.example"]',
    )
    yield server
    stop_server(server)
    log = server.log_text()
    assert "Traceback" not in log, f"the server logged a traceback:\n{log[-5000:]}"


@pytest.fixture(scope="session")
def client(live_server: LiveServer):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=live_server.v1, api_key="x", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A real headless Chromium (Debian's), shared by the session (tests/support/browser.py)."""
    from tests.support.browser import browser_fixture

    yield from browser_fixture()
