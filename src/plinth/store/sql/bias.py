"""The bias area of the metadata store in SQL (monitoring, issue 14)."""

from __future__ import annotations

from plinth.store.sql.common import SqlBase


class BiasSql(SqlBase):
    """:class:`plinth.store.base_bias.BiasStore` on SQL."""
