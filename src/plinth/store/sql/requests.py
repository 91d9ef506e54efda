"""The requests area of the metadata store in SQL (monitoring, issue 14)."""

from __future__ import annotations

from plinth.store.sql.common import SqlBase


class RequestLogSql(SqlBase):
    """:class:`plinth.store.base_requests.RequestLogStore` on SQL."""
