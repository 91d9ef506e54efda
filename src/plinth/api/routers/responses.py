"""The Responses API under ``/v1/responses`` (OpenAI-compatible; ADR 0119).

Creating a response runs the chat service (``plinth.serving.responses``); a stored response
is read, listed item by item and deleted in the caller's project only. Handlers stay short.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from plinth.api.deps import services_of
from plinth.api.openapi import errors, stream
from plinth.api.streaming import ClientDisconnected, SSEResponse, run_until_disconnect
from plinth.errors import ErrorCode, PlinthError
from plinth.serving.responses.protocol import DeletedResponse, InputItemList, ResponseObject, ResponsesRequest
from plinth.serving.responses.service import ResponsesService

router = APIRouter(prefix="/v1", tags=["openai"])

_ID = Path(min_length=1, max_length=64, description="resp_...")


def _service(request: Request) -> ResponsesService:
    services = services_of(request)
    return ResponsesService(services.completions, services.store)


@router.post(
    "/responses",
    response_model=ResponseObject,
    responses={
        **errors(404, 429, 502, 503),
        **stream(
            "text/event-stream",
            "with stream=true: server-sent events (response.created ... response.completed, each with its sequence_number)",
        ),
    },
)
async def create_response(body: ResponsesRequest, request: Request) -> Response:
    try:
        run = await run_until_disconnect(request, _service(request).start(body))
    except ClientDisconnected:
        return Response(status_code=499)
    if body.stream:
        return SSEResponse(run.events(), headers=run.headers, on_close=run.close, error_event=run.failure_events)
    try:
        answer = await run_until_disconnect(request, run.collect())
    except ClientDisconnected:
        return Response(status_code=499)
    finally:
        run.close()
    return JSONResponse(answer, headers=run.headers)


@router.get("/responses/{response_id}", response_model=ResponseObject)
async def get_response(
    request: Request,
    response_id: str = _ID,
    stream: bool = Query(False, description="only false: a stored response is not streamed again", json_schema_extra={"enum": [False]}),
) -> Response:
    if stream:
        raise PlinthError(ErrorCode.UNSUPPORTED, "a stored response is not streamed again: leave out stream", param="stream")
    return JSONResponse((await _service(request).get(response_id)).body)


@router.delete("/responses/{response_id}", response_model=DeletedResponse)
async def delete_response(request: Request, response_id: str = _ID) -> dict[str, Any]:
    await _service(request).delete(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/responses/{response_id}/input_items", response_model=InputItemList)
async def list_input_items(
    request: Request,
    response_id: str = _ID,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = Query("desc", description="desc: the newest item first"),
    after: str | None = Query(None, max_length=64, description="an item id: list the items after it in this order"),
) -> dict[str, Any]:
    items = list((await _service(request).get(response_id)).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
