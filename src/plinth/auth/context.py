"""Who is calling, for the code a request reaches (the serving hooks, the routers).

The API's auth middleware sets :data:`current_call` for the length of each request (a context
variable, so every task and thread the request starts sees it); the routers also find it in
``request.state``. Outside a request (the CLI, jobs) it is None.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from plinth.domain.auth import Principal

ANONYMOUS = Principal(actor="anonymous")


@dataclass
class CallInfo:
    principal: Principal
    method: str = ""
    path: str = ""
    sticky: str | None = None  # the sticky-routing header's value
    client: str | None = None
    audited: bool = False  # a service wrote a detailed audit entry for this call


current_call: ContextVar[CallInfo | None] = ContextVar("plinth_call", default=None)


def current_principal() -> Principal | None:
    call = current_call.get()
    return None if call is None else call.principal
