"""Parameter types the routers share."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _json_number(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError(f"must be a number, not {'true or false' if isinstance(value, bool) else 'a string'}")
    return value


#: ``Annotated[int, JSON_NUMBER]`` in a JSON body: only a JSON number, as the document declares
#: (pydantic's lax mode would read ``true`` as 1 and ``" 5 "`` as 5); ``3.0`` is still the
#: integer 3, as JSON Schema has it
JSON_NUMBER = BeforeValidator(_json_number)


def _json_time(value: Any) -> Any:
    if isinstance(value, (bool, int, float)):
        raise ValueError("must be an ISO 8601 time, not a number")
    return value


#: ``Annotated[datetime, JSON_TIME]``: only an ISO 8601 string (pydantic would read a number as
#: seconds since 1970, which the document does not declare)
JSON_TIME = BeforeValidator(_json_time)
