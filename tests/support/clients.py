"""What the real-client suite (tests/integration/test_clients_*.py, test_real_clients.py) shares:
a small pydantic model and a weather tool simple enough for the 135M embedded model, prompts
that contain their answers, and the offline set-up some clients need.

The suite asserts what a client does with plinth's answers (parsed objects of the right type,
tool calls with the right name and arguments valid for the tool's schema, the tool actually
run), not how clever the model is.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import jsonschema
import pydantic

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "the city's name"}},
    "required": ["city"],
}
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city now.", "parameters": WEATHER_SCHEMA},
}
WEATHER_ASK = "What is the weather in Paris?"


class Person(pydantic.BaseModel):
    """A person named in the text."""

    name: str = pydantic.Field(description="the person's first name")
    age: int = pydantic.Field(description="the person's age in years")


PERSON_ASK = "Alice is 30 years old. Give her name and age."
# The 135M model, shown a JSON schema in a system prompt and asked for JSON (instructor's JSON
# mode, LangChain's json_mode), tends to copy the schema back; one worked example in the
# conversation is how a user gets instances out of a small model.
PERSON_EXAMPLE: list[dict[str, str]] = [
    {"role": "user", "content": "Bob is 41 years old. Give his name and age."},
    {"role": "assistant", "content": '{"name": "Bob", "age": 41}'},
    {"role": "user", "content": PERSON_ASK},
]


def assert_weather_args(arguments: Any) -> None:
    """The arguments of a get_weather call (a JSON string or a dict) are valid for its schema."""
    import json

    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    jsonschema.validate(args, WEATHER_SCHEMA)
    assert args["city"].strip(), args


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Inside, a socket may connect only to 127.0.0.1/::1 and only local names resolve: a client
    that tries to reach the network (telemetry, a price map, an encoding file) gets an error, and
    the attempt is listed in what this yields, for the test to assert it stayed empty."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            attempts.append(f"connect {address}")
            raise ConnectionRefusedError(f"the client suite runs offline: refused a connection to {address}")
        return real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1"):
            attempts.append(f"resolve {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"the client suite runs offline: refused to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kw)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    try:
        yield attempts
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo
