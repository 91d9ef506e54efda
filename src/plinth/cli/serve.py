"""``plinth up`` (the server) and ``plinth chat`` (in-process or against a server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from plinth import __version__
from plinth.cli.common import console, get_services, get_settings, mask_url
from plinth.config import Settings
from plinth.errors import ErrorCode, PlinthError


# -- up -----------------------------------------------------------------------------------
def up(
    host: str | None = typer.Option(None, help="Bind address (PLINTH_HOST, default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (PLINTH_PORT, default 8000)."),
) -> None:
    """Start the platform: OpenAI-compatible API on /v1, management API, metrics and docs."""
    import logging

    from plinth.api.app import create_app
    from plinth.api.server import run as run_server

    settings = get_settings(host=host, port=port)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _check_port_free(settings)
    services = get_services(settings, strict=True)  # every store call of the server names its project
    base = settings.base_url
    console.print(f"[bold green]plinth {__version__}[/] serving with data in [cyan]{settings.home}[/]")
    console.print(f"  OpenAI-compatible API  [cyan]{base}/v1[/]   (model: {settings.default_model})")
    console.print(f"  Web console            [cyan]{base}/[/]")
    console.print(f"  Management API         [cyan]{base}/api/v1[/]")
    console.print(f"  Metrics                [cyan]{base}/metrics[/]")
    console.print(f"  Docs                   [cyan]{base}/docs[/]  (OpenAPI: {base}/openapi.json)")
    console.print(f"  Metadata store         {mask_url(settings.database_url or '')}")
    if settings.jobs_local_worker:
        worker = services.jobs.start_local_worker()
        console.print(f"  Job worker             {worker.id} (jobs run in child processes; PLINTH_JOBS_LOCAL_WORKER=false turns it off)")
    console.print("  Press Ctrl+C to stop.")
    run_server(create_app(services), settings)  # uvicorn, with a deadline on request headers


def _check_port_free(settings: Settings) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((settings.host, settings.port))
        except OSError as e:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"cannot listen on {settings.host}:{settings.port}: {e.strerror}; is plinth already running? "
                "Choose another port with --port or PLINTH_PORT",
            ) from None


# -- chat ------------------------------------------------------------------------------------
def chat(
    model: str | None = typer.Option(None, "--model", "-m", help="Model to chat with (default: the default model)."),
    url: str | None = typer.Option(None, help="Talk to a running server (e.g. http://127.0.0.1:8000/v1) instead of in-process."),
    system: str | None = typer.Option(None, help="System prompt."),
    max_tokens: int = typer.Option(256, help="Longest answer in tokens."),
    temperature: float = typer.Option(0.7, help="Sampling temperature (0 = greedy)."),
    message: str | None = typer.Option(None, "--message", help="Ask one question, print the answer and exit."),
) -> None:
    """Chat with a model in the terminal, streaming the answer."""
    settings = get_settings()
    model = model or settings.default_model
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    services: Any = None
    loop: asyncio.AbstractEventLoop | None = None
    if url:
        send = _remote_sender(url, model, max_tokens, temperature)
    else:
        services = get_services(settings)
        loop = asyncio.new_event_loop()
        send = _local_sender(services, loop, model, max_tokens, temperature)
    try:
        if message is not None:
            _chat_turn(send, history, message)
            return
        console.print(f"[bold]Chatting with {model}[/] — empty line or Ctrl+D to quit.")
        while True:
            try:
                text = console.input("[bold cyan]you> [/]")
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if not text.strip():
                break
            _chat_turn(send, history, text)
    finally:
        if services is not None:
            services.close()
        if loop is not None:  # the command is also called in-process (tests): leave no loop behind
            loop.close()


def _chat_turn(send: Any, history: list[dict[str, str]], text: str) -> None:
    history.append({"role": "user", "content": text})
    console.print("[bold magenta]assistant> [/]", end="")
    answer = []
    for piece in send(history):
        answer.append(piece)
        console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()
    history.append({"role": "assistant", "content": "".join(answer)})


def _local_sender(services: Any, loop: asyncio.AbstractEventLoop, model: str, max_tokens: int, temperature: float) -> Any:
    """Generate in this process, on ``loop``: each turn is a generator of text pieces as they stream."""
    from plinth.serving.protocol import ChatCompletionRequest

    def send(history: list[dict[str, str]]) -> Any:
        req = ChatCompletionRequest(model=model, messages=history, max_tokens=max_tokens, temperature=temperature)
        job = loop.run_until_complete(services.completions.start_chat(req))
        pieces = job.choices().__aiter__()
        try:
            while True:
                try:
                    _idx, piece, _finish = loop.run_until_complete(pieces.__anext__())
                except StopAsyncIteration:
                    break
                if piece:
                    yield piece
        finally:
            loop.run_until_complete(pieces.aclose())
            job.close()

    return send


def _remote_sender(url: str, model: str, max_tokens: int, temperature: float) -> Any:
    import httpx

    def send(history: list[dict[str, str]]) -> Any:
        body = {"model": model, "messages": history, "max_tokens": max_tokens, "temperature": temperature, "stream": True}
        try:
            with httpx.stream("POST", url.rstrip("/") + "/chat/completions", json=body, timeout=600) as r:
                if r.status_code >= 400:
                    r.read()
                    try:
                        msg = r.json()["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        msg = r.text[:300]
                    raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"server answered {r.status_code}: {msg}")
                for line in r.iter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    event = json.loads(line[5:])
                    if "error" in event:
                        raise PlinthError(ErrorCode.UPSTREAM_ERROR, event["error"].get("message", "error"))
                    for choice in event.get("choices", []):
                        piece = choice.get("delta", {}).get("content")
                        if piece:
                            yield piece
        except httpx.HTTPError as e:
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"cannot reach {url}: {e}") from None

    return send
