"""The serving area of the metadata store: attachments of served model ids."""

from __future__ import annotations

import abc

from plinth.domain.serving import Attachments


class ServingStore(abc.ABC):
    @abc.abstractmethod
    def get_attachments(self, model_id: str) -> Attachments | None:
        """What is attached to ``model_id`` (a model name or ``base:adapter``), or None."""

    @abc.abstractmethod
    def set_attachments(self, model_id: str, attachments: Attachments) -> Attachments:
        """Replace the attachments of ``model_id``; empty attachments delete the row.
        Returns the stored value (with ``updated_at``)."""

    @abc.abstractmethod
    def delete_attachments(self, model_id: str, *, with_adapters: bool = False) -> int:
        """Delete the attachments of ``model_id`` (and, with ``with_adapters``, of every
        ``model_id:adapter``); returns how many rows went."""

    @abc.abstractmethod
    def list_attachments(self) -> dict[str, Attachments]:
        """Every model id that has attachments."""
