"""Versioned datasets in SQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from plinth.domain.datasets import Dataset, DatasetFormat, DatasetVersion, SourceFormat
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.schema.datasets import DatasetRow, DatasetVersionRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_unique_violation
from plinth.store.sql.scoping import ALL_PROJECTS


class DatasetsSql(SqlBase):
    """:class:`plinth.store.base_datasets.DatasetsStore` on SQL."""

    def add_dataset_version(self, version: DatasetVersion, *, description: str | None = None) -> tuple[DatasetVersion, bool]:
        for attempt in range(3):
            try:
                return self._add_version(version, description)
            except IntegrityError as e:
                # Two writers created the dataset, or took the same number, at once: again.
                if not is_unique_violation(e) or attempt == 2:
                    raise
            except RefusedValue as e:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"dataset {version.dataset!r} cannot be stored: {db_reason(e)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _add_version(self, version: DatasetVersion, description: str | None) -> tuple[DatasetVersion, bool]:
        now = datetime.now(UTC)
        project = self._project()
        with self._session(write=True) as s:
            ds = s.get(DatasetRow, (project, version.dataset), with_for_update=True)
            if ds is None:
                ds = DatasetRow(
                    project=project, name=version.dataset, description=description or "", latest_version=0, created_at=now, updated_at=now
                )
                s.add(ds)
                s.flush()
            else:
                latest = s.get(DatasetVersionRow, (project, ds.name, ds.latest_version))
                if latest is not None and latest.digest == version.digest and latest.split_digest == version.split_digest:
                    return _version(latest), False
            number = ds.latest_version + 1
            row = DatasetVersionRow(
                project=project,
                dataset=ds.name,
                version=number,
                format=version.format.value,
                digest=version.digest,
                split_digest=version.split_digest,
                source_digest=version.source_digest,
                source_name=version.source_name,
                source_format=version.source_format.value,
                rows=version.rows,
                train_rows=version.train_rows,
                validation_rows=version.validation_rows,
                split=dict(version.split),
                stats=dict(version.stats),
                note=version.note,
                created_at=now,
            )
            s.add(row)
            ds.latest_version = number
            ds.updated_at = now
            if description is not None:
                ds.description = description
            s.flush()
            return _version(row), True

    def get_dataset(self, name: str) -> Dataset:
        with self._session() as s:
            row = s.get(DatasetRow, (self._project(), name))
            if row is None:
                raise not_found("dataset", name)
            return _dataset(row)

    def list_datasets(self) -> list[Dataset]:
        with self._session() as s:
            rows = [_dataset(r) for r in s.scalars(select(DatasetRow).where(self._visible(DatasetRow)))]
        return sorted(rows, key=lambda d: d.name)

    def get_dataset_version(self, name: str, version: int | None = None) -> DatasetVersion:
        project = self._project()
        with self._session() as s:
            ds = s.get(DatasetRow, (project, name))
            if ds is None:
                raise not_found("dataset", name)
            number = ds.latest_version if version is None else version
            row = s.get(DatasetVersionRow, (project, name, number))
            if row is None:
                raise PlinthError(
                    ErrorCode.NOT_FOUND,
                    f"dataset {name!r} has no version {number} (latest is {ds.latest_version})",
                    details={"kind": "dataset version", "name": f"{name}@{number}", "latest": ds.latest_version},
                )
            return _version(row)

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        with self._session() as s:
            project = self._project()
            if s.get(DatasetRow, (project, name)) is None:
                raise not_found("dataset", name)
            rows = s.scalars(
                select(DatasetVersionRow)
                .where(DatasetVersionRow.project == project, DatasetVersionRow.dataset == name)
                .order_by(DatasetVersionRow.version)
            )
            return [_version(r) for r in rows]

    def delete_dataset(self, name: str) -> list[DatasetVersion]:
        with self._session(write=True) as s:
            project = self._project()
            ds = s.get(DatasetRow, (project, name), with_for_update=True)
            if ds is None:
                raise not_found("dataset", name)
            of_it = (DatasetVersionRow.project == project, DatasetVersionRow.dataset == name)
            rows = list(s.scalars(select(DatasetVersionRow).where(*of_it)))
            versions = [_version(r) for r in rows]
            s.execute(delete(DatasetVersionRow).where(*of_it))
            s.delete(ds)
            return versions

    def count_dataset_blob_users(self, digest: str) -> int:
        with self._session() as s:
            cond = or_(
                DatasetVersionRow.digest == digest,
                DatasetVersionRow.split_digest == digest,
                DatasetVersionRow.source_digest == digest,
            )
            query = select(func.count()).select_from(DatasetVersionRow).where(cond).execution_options(**{ALL_PROJECTS: True})
            return int(s.scalar(query) or 0)


def _dataset(row: DatasetRow) -> Dataset:
    return Dataset(
        name=row.name,
        latest_version=row.latest_version,
        description=row.description or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(
        dataset=row.dataset,
        version=row.version,
        format=DatasetFormat(row.format),
        digest=row.digest,
        split_digest=row.split_digest,
        rows=row.rows,
        train_rows=row.train_rows,
        validation_rows=row.validation_rows,
        source_format=SourceFormat(row.source_format),
        split=dict(row.split or {}),
        stats=dict(row.stats or {}),
        source_digest=row.source_digest,
        source_name=row.source_name,
        note=row.note,
        created_at=row.created_at,
    )
