"""The model catalog in SQL: models and their LoRA adapters."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from plinth.domain import AdapterFormat, AdapterRecord, ModelFormat, ModelRecord
from plinth.domain.projects import SHARED
from plinth.errors import ErrorCode, PlinthError
from plinth.store.schema import AdapterRow, ModelRow
from plinth.store.sql.common import (
    RefusedValue,
    SqlBase,
    db_reason,
    is_foreign_key_violation,
    is_unique_violation,
    json_or_invalid,
)
from plinth.store.sql.scoping import ALL_PROJECTS


class CatalogSql(SqlBase):
    """:class:`plinth.store.base_catalog.CatalogStore` on SQL."""

    # -- models ------------------------------------------------------------------------------
    def add_model(self, record: ModelRecord) -> ModelRecord:
        row = _row_from_record(record)
        try:
            with self._session(write=True) as s:
                # names are unique per project, and a project's name may not hide a shared one
                if s.scalar(select(ModelRow.id).where(ModelRow.name == record.name, self._visible(ModelRow))) is not None:
                    raise PlinthError(
                        ErrorCode.ALREADY_EXISTS,
                        f"model {record.name!r} already exists",
                        details={"kind": "model", "name": record.name},
                    )
                s.add(row)
                s.flush()
                s.refresh(row)
                stored = _record_from_row(row)
        except RefusedValue as e:  # Postgres: a value too long for its column, out of range...
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"model {record.name!r} cannot be stored: {db_reason(e)}") from None
        except IntegrityError as e:
            if not is_unique_violation(e):
                raise
            if "pk_models" in str(e.orig) or "models.id" in str(e.orig):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"model id {row.id!r} already exists", details={"id": row.id}) from None
            raise PlinthError(
                ErrorCode.ALREADY_EXISTS,
                f"model {record.name!r} already exists",
                details={"kind": "model", "name": record.name},
            ) from None
        return stored

    def get_model(self, name: str) -> ModelRecord:
        record = self.find_model(name)
        if record is None:
            raise _model_not_found(name)
        return record

    def find_model(self, name: str) -> ModelRecord | None:
        with self._session() as s:
            row = s.scalar(self._model_query(name))
            return None if row is None else _record_from_row(row)

    def _model_query(self, name: str) -> Any:
        return select(ModelRow).where(ModelRow.name == name, self._visible(ModelRow)).order_by(self._own_first(ModelRow)).limit(1)

    def list_models(self) -> list[ModelRecord]:
        with self._session() as s:
            records = [_record_from_row(r) for r in s.scalars(select(ModelRow).where(self._visible(ModelRow)))]
        # Sorted here, not by ORDER BY: collations differ between SQLite and Postgres.
        return sorted(records, key=lambda r: r.name)

    def delete_model(self, name: str) -> ModelRecord:
        with self._session(write=True) as s:
            row = s.scalar(self._model_query(name).with_for_update())
            if row is None:
                raise _model_not_found(name)
            record = _record_from_row(row)
            s.delete(row)
            s.flush()  # the scope check: a project cannot delete a shared model
            # its adapters (no foreign key: they may live in other projects when it is shared)
            adapters = delete(AdapterRow).where(AdapterRow.base_model == name)
            if row.project != SHARED:
                adapters = adapters.where(AdapterRow.project == row.project)
            s.execute(adapters)
        return record

    def set_model_runtime(self, name: str, runtime: str) -> ModelRecord:
        with self._session(write=True) as s:
            row = s.scalar(self._model_query(name).with_for_update())
            if row is None:
                raise _model_not_found(name)
            row.runtime = runtime
            s.flush()
            return _record_from_row(row)

    def count_models_with_digest(self, digest: str) -> int:
        with self._session() as s:
            query = select(func.count()).select_from(ModelRow).where(ModelRow.digest == digest)
            return s.scalar(query.execution_options(**{ALL_PROJECTS: True})) or 0

    # -- adapters ----------------------------------------------------------------------------
    def add_adapter(self, record: AdapterRecord) -> AdapterRecord:
        row = _adapter_row_from_record(record)
        try:
            with self._session(write=True) as s:
                # Checked first for a clear error; the foreign key still guards against a
                # base model deleted concurrently (Postgres), mapped the same way below.
                if s.scalar(select(ModelRow.id).where(ModelRow.name == record.base_model, self._visible(ModelRow))) is None:
                    raise _model_not_found(record.base_model)
                s.add(row)
                s.flush()
                s.refresh(row)
                stored = _adapter_record_from_row(row)
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"adapter {record.model_id} cannot be stored: {db_reason(e)}") from None
        except IntegrityError as e:
            if is_foreign_key_violation(e):
                raise _model_not_found(record.base_model) from None
            if not is_unique_violation(e):
                raise
            if "pk_adapters" in str(e.orig) or "adapters.id" in str(e.orig):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"adapter id {row.id!r} already exists", details={"id": row.id}) from None
            raise PlinthError(
                ErrorCode.ALREADY_EXISTS,
                f"adapter {record.model_id} already exists",
                details=_adapter_details(record.base_model, record.name),
            ) from None
        return stored

    def get_adapter(self, base_model: str, name: str) -> AdapterRecord:
        record = self.find_adapter(base_model, name)
        if record is None:
            raise _adapter_not_found(base_model, name)
        return record

    def find_adapter(self, base_model: str, name: str) -> AdapterRecord | None:
        with self._session() as s:
            row = s.scalar(self._adapter_query(base_model, name))
            return None if row is None else _adapter_record_from_row(row)

    def _adapter_query(self, base_model: str, name: str) -> Any:
        return select(AdapterRow).where(AdapterRow.base_model == base_model, AdapterRow.name == name, self._visible(AdapterRow))

    def list_adapters(self, base_model: str | None = None) -> list[AdapterRecord]:
        query = select(AdapterRow).where(self._visible(AdapterRow))
        if base_model is not None:
            query = query.where(AdapterRow.base_model == base_model)
        with self._session() as s:
            records = [_adapter_record_from_row(r) for r in s.scalars(query)]
        # Sorted here, not by ORDER BY: collations differ between SQLite and Postgres.
        return sorted(records, key=lambda r: (r.base_model, r.name))

    def delete_adapter(self, base_model: str, name: str) -> AdapterRecord:
        with self._session(write=True) as s:
            row = s.scalar(self._adapter_query(base_model, name).with_for_update())
            if row is None:
                raise _adapter_not_found(base_model, name)
            record = _adapter_record_from_row(row)
            s.delete(row)
        return record

    def count_adapters_with_digest(self, digest: str) -> int:
        query = select(func.count()).select_from(AdapterRow).where(or_(AdapterRow.digest == digest, AdapterRow.gguf_digest == digest))
        with self._session() as s:
            return s.scalar(query.execution_options(**{ALL_PROJECTS: True})) or 0

    def update_adapter_gguf(self, base_model: str, name: str, gguf_digest: str | None) -> AdapterRecord:
        try:
            with self._session(write=True) as s:
                row = s.scalar(self._adapter_query(base_model, name).with_for_update())
                if row is None:
                    raise _adapter_not_found(base_model, name)
                row.gguf_digest = gguf_digest
                s.flush()
                record = _adapter_record_from_row(row)
        except RefusedValue as e:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"GGUF digest of adapter {base_model}:{name} cannot be stored: {db_reason(e)}",
                param="gguf_digest",
            ) from None
        return record


def _model_not_found(name: str) -> PlinthError:
    return PlinthError(ErrorCode.MODEL_NOT_FOUND, f"model {name!r} does not exist", details={"kind": "model", "name": name})


def _row_from_record(record: ModelRecord) -> ModelRow:
    parameters = dict(record.parameters or {})
    try:
        json.dumps(parameters, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"parameters of model {record.name!r} must be JSON-serialisable: {e}",
            param="parameters",
        ) from None
    return ModelRow(
        id=record.id or uuid4().hex,
        project=SHARED if record.builtin else None,  # None: the scope's project
        name=record.name,
        format=ModelFormat(record.format).value,
        runtime=record.runtime,
        digest=record.digest,
        size_bytes=record.size_bytes,
        architecture=record.architecture,
        context_length=record.context_length,
        chat_template=record.chat_template,
        license=record.license,
        source=record.source,
        builtin=record.builtin,
        parameters=parameters,
        created_at=record.created_at or datetime.now(UTC),
    )


def _record_from_row(row: ModelRow) -> ModelRecord:
    return ModelRecord(
        id=row.id,
        name=row.name,
        format=ModelFormat(row.format),
        runtime=row.runtime,
        digest=row.digest,
        size_bytes=row.size_bytes,
        architecture=row.architecture,
        context_length=row.context_length,
        chat_template=row.chat_template,
        license=row.license,
        source=row.source,
        builtin=row.builtin,
        parameters=dict(row.parameters or {}),
        created_at=row.created_at,
    )


def _adapter_details(base_model: str, name: str) -> dict[str, Any]:
    return {"kind": "adapter", "base_model": base_model, "name": name, "model_id": f"{base_model}:{name}"}


def _adapter_not_found(base_model: str, name: str) -> PlinthError:
    return PlinthError(
        ErrorCode.NOT_FOUND,
        f"adapter {base_model}:{name} does not exist",
        details=_adapter_details(base_model, name),
    )


def _adapter_row_from_record(record: AdapterRecord) -> AdapterRow:
    model_id = record.model_id
    try:
        fmt = AdapterFormat(record.format).value
    except ValueError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"adapter {model_id} has unknown format {record.format!r}; use {', '.join(f.value for f in AdapterFormat)}",
            param="format",
        ) from None
    modules = record.target_modules
    if isinstance(modules, str | bytes) or not all(isinstance(m, str) for m in modules or ()):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"target_modules of adapter {model_id} must be a list of strings, got {modules!r}",
            param="target_modules",
        )
    target_modules = list(modules or ())
    parameters = dict(record.parameters or {})
    json_or_invalid(parameters, f"parameters of adapter {model_id}", "parameters")
    alpha = None if record.alpha is None else float(record.alpha)
    if alpha is not None and not math.isfinite(alpha):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"alpha of adapter {model_id} must be a finite number, got {alpha}",
            param="alpha",
        )
    return AdapterRow(
        id=record.id or uuid4().hex,
        base_model=record.base_model,
        name=record.name,
        format=fmt,
        digest=record.digest,
        gguf_digest=record.gguf_digest,
        size_bytes=record.size_bytes,
        rank=record.rank,
        alpha=alpha,
        target_modules=target_modules,
        source=record.source,
        parameters=parameters,
        created_at=record.created_at or datetime.now(UTC),
    )


def _adapter_record_from_row(row: AdapterRow) -> AdapterRecord:
    return AdapterRecord(
        id=row.id,
        base_model=row.base_model,
        name=row.name,
        format=AdapterFormat(row.format),
        digest=row.digest,
        gguf_digest=row.gguf_digest,
        size_bytes=row.size_bytes,
        rank=row.rank,
        alpha=row.alpha,
        target_modules=list(row.target_modules or []),
        source=row.source,
        parameters=dict(row.parameters or {}),
        created_at=row.created_at,
    )
