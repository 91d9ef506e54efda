"""The alerts area of the metadata store in SQL (monitoring, issue 14)."""

from __future__ import annotations

from plinth.store.sql.common import SqlBase


class AlertsSql(SqlBase):
    """:class:`plinth.store.base_alerts.AlertsStore` on SQL."""
