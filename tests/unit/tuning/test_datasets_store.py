"""Dataset versions in the metadata store, on SQLite and Postgres: numbering, no-op re-adds,
concurrent writers, removal."""

from __future__ import annotations

import threading

import pytest

from plinth.domain.datasets import DatasetFormat, DatasetVersion, SourceFormat
from plinth.errors import ErrorCode, PlinthError
from plinth.store.sql import SqlStore


def version(name: str, digest: str, split: str = "sha256:" + "s" * 64) -> DatasetVersion:
    return DatasetVersion(
        dataset=name,
        version=0,
        format=DatasetFormat.CHAT,
        digest=digest,
        split_digest=split,
        rows=3,
        train_rows=2,
        validation_rows=1,
        source_format=SourceFormat.JSONL,
        split={"validation_fraction": 0.1, "seed": 0},
        stats={"tokens": {"total": 9}},
        source_digest="sha256:" + "f" * 64,
        source_name="f.jsonl",
    )


D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_versions_are_numbered_and_identical_content_is_a_noop(store: SqlStore) -> None:
    v1, created = store.add_dataset_version(version("faq", D1), description="the FAQ")
    assert created and v1.version == 1 and v1.ref == "faq@1" and v1.created_at is not None
    same, created = store.add_dataset_version(version("faq", D1))
    assert not created and same.version == 1
    v2, created = store.add_dataset_version(version("faq", D2))
    assert created and v2.version == 2
    back, created = store.add_dataset_version(version("faq", D1))  # back to the first content: a change
    assert created and back.version == 3
    resplit, created = store.add_dataset_version(version("faq", D1, split="sha256:" + "t" * 64))
    assert created and resplit.version == 4
    assert store.get_dataset("faq").latest_version == 4 and store.get_dataset("faq").description == "the FAQ"
    assert store.get_dataset_version("faq").version == 4
    assert store.get_dataset_version("faq", 2).digest == D2 and store.get_dataset_version("faq", 2).stats == {"tokens": {"total": 9}}
    assert [v.version for v in store.list_dataset_versions("faq")] == [1, 2, 3, 4]
    assert store.count_dataset_blob_users(D1) == 3 and store.count_dataset_blob_users("sha256:" + "f" * 64) == 4
    with pytest.raises(PlinthError) as e:
        store.get_dataset_version("faq", 9)
    assert e.value.code is ErrorCode.NOT_FOUND


def test_concurrent_writers_get_distinct_versions(store: SqlStore, store_url: str) -> None:
    results: list[int] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def add(i: int) -> None:
        try:
            with SqlStore(store_url) as s:
                barrier.wait()
                v, _ = s.add_dataset_version(version("race", "sha256:" + f"{i:x}" * 64))
                results.append(v.version)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == [1, 2, 3, 4]
    assert store.get_dataset("race").latest_version == 4


def test_delete(store: SqlStore) -> None:
    store.add_dataset_version(version("a", D1))
    store.add_dataset_version(version("a", D2))
    store.add_dataset_version(version("b", D1))
    assert [v.ref for v in store.delete_dataset("a")] == ["a@1", "a@2"]
    assert [d.name for d in store.list_datasets()] == ["b"]
    with pytest.raises(PlinthError):
        store.list_dataset_versions("a")
    assert store.count_dataset_blob_users(D2) == 0 and store.count_dataset_blob_users(D1) == 1
