"""The requests area of the metadata store (monitoring, issue 14)."""

from __future__ import annotations

import abc


class RequestLogStore(abc.ABC):  # noqa: B024 - the area's methods are added as it is built
    """Methods of this area; see :mod:`plinth.store.sql.requests`."""
