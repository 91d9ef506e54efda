"""The datasets area of the metadata store: datasets and their immutable versions."""

from __future__ import annotations

import abc

from plinth.domain.datasets import Dataset, DatasetVersion


class DatasetsStore(abc.ABC):
    @abc.abstractmethod
    def add_dataset_version(self, version: DatasetVersion, *, description: str | None = None) -> tuple[DatasetVersion, bool]:
        """Add ``version`` as the next version of its dataset (created if new), in one
        transaction. ``version.version`` is ignored and assigned. When the latest version
        already has the same ``digest`` and ``split_digest``, nothing is added and that
        version is returned with ``False``."""

    @abc.abstractmethod
    def get_dataset(self, name: str) -> Dataset:
        """PlinthError(not_found) if there is no such dataset."""

    @abc.abstractmethod
    def list_datasets(self) -> list[Dataset]: ...

    @abc.abstractmethod
    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """One version (the latest when ``version`` is None); PlinthError(not_found)."""

    @abc.abstractmethod
    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """Every version of the dataset, oldest first."""

    @abc.abstractmethod
    def delete_dataset(self, name: str) -> list[DatasetVersion]:
        """Remove the dataset and every version; returns what was removed."""

    @abc.abstractmethod
    def count_dataset_blob_users(self, digest: str) -> int:
        """How many versions (of any dataset) refer to the blob as rows, split or source."""
