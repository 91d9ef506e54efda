"""Projects in the store: every query runs in the scope of the call, on SQLite and Postgres.

The isolation is the store's (``plinth.store.sql.scoping``), not the routers': a project's
rows are invisible from another project, whatever the method; names are unique per project;
shared rows (built-in models and policies) are read by all and changed by none but the
server; the server's own store refuses a call made outside any scope.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plinth.domain import ModelFormat, ModelRecord
from plinth.domain.auth import ApiKey, AuditEntry, Scope
from plinth.domain.datasets import DatasetFormat, DatasetVersion, SourceFormat
from plinth.domain.deployments import Deployment, Target
from plinth.domain.jobs import Job, JobFilter, Resources
from plinth.domain.knowledge import KnowledgeBase
from plinth.domain.projects import SHARED, Project, ProjectQuotas, User, project_scope, system_scope
from plinth.domain.projects import Role as MemberRole
from plinth.domain.tracking import Run, RunStatus
from plinth.errors import ErrorCode, PlinthError
from plinth.store.sql import SqlStore


def _model(name: str, *, builtin: bool = False) -> ModelRecord:
    return ModelRecord(
        name=name, format=ModelFormat.GGUF, runtime="llamacpp", digest=f"sha256:{name:0<64}"[:71], size_bytes=10, builtin=builtin
    )


def _version(dataset: str, digest: str = "sha256:" + "a" * 64) -> DatasetVersion:
    return DatasetVersion(
        dataset=dataset,
        version=0,
        format=DatasetFormat.CHAT,
        digest=digest,
        split_digest="sha256:" + "b" * 64,
        source_digest=None,
        source_name="faq.jsonl",
        source_format=SourceFormat.JSONL,
        rows=3,
        train_rows=2,
        validation_rows=1,
        split={},
        stats={"bytes": 123},
    )


@pytest.fixture
def two(store: SqlStore) -> SqlStore:
    for name in ("claims", "marketing"):
        store.create_project(Project(name=name))
    return store


def test_a_projects_rows_are_invisible_from_another(two: SqlStore) -> None:
    s = two
    with project_scope("claims"):
        s.add_model(_model("fraud"))
        s.add_dataset_version(_version("notes"))
        kb = s.create_kb(KnowledgeBase(name="policies", embedder="minilm", embedding_model="m", dim=4, chunk_tokens=100, overlap_tokens=10))
        run = s.create_run(Run(id="", name="tune", kind="tune", status=RunStatus.RUNNING))
        s.create_deployment(Deployment(name="assistant", stable_revision=1), (Target(model="fraud"),), actor="t")
        s.add_audit(AuditEntry(actor="t", action="x", target_type="t", target="t"))
    with project_scope("marketing"):
        assert s.find_model("fraud") is None
        assert [m.name for m in s.list_models()] == []
        with pytest.raises(PlinthError) as e:
            s.get_dataset("notes")
        assert e.value.code is ErrorCode.NOT_FOUND
        assert s.list_datasets() == []
        assert s.find_kb("policies") is None and s.list_kbs() == []
        assert s.list_kb_versions(kb.id) == []  # a child table, looked up by the other project's id
        with pytest.raises(PlinthError):
            s.get_run(run.id)
        assert s.list_runs() == []
        assert s.find_deployment("assistant") is None
        assert s.list_audit() == []
    with project_scope("claims"):
        assert s.find_model("fraud") is not None and s.get_run(run.id).id == run.id
        assert [e.action for e in s.list_audit()] == ["x"]


def test_names_are_unique_per_project(two: SqlStore) -> None:
    s = two
    for project in ("claims", "marketing"):
        with project_scope(project):
            s.add_model(_model("assistant"))
            s.add_dataset_version(_version("faq"))
            s.create_registered_model("acme")
    with project_scope("claims"), pytest.raises(PlinthError) as e:
        s.add_model(_model("assistant"))
    assert e.value.code is ErrorCode.ALREADY_EXISTS
    with system_scope("claims"):  # the system scope names things in its project too
        assert [m.name for m in s.list_models()] == ["assistant"]
    with project_scope("marketing"):
        s.delete_dataset("faq")
    with project_scope("claims"):
        assert s.get_dataset("faq").latest_version == 1  # the other project's dataset of the same name is untouched


def test_shared_rows_are_read_by_every_project_and_changed_by_none(two: SqlStore) -> None:
    s = two
    with system_scope():
        s.add_model(_model("embedded", builtin=True))
    for project in ("claims", "marketing"):
        with project_scope(project):
            assert s.get_model("embedded").builtin
            with pytest.raises(PlinthError) as e:
                s.delete_model("embedded")
            assert e.value.code is ErrorCode.PERMISSION_DENIED
            with pytest.raises(PlinthError) as e:
                s.add_model(_model("embedded"))  # a project's name may not hide a shared one
            assert e.value.code is ErrorCode.ALREADY_EXISTS
    with project_scope("claims"):
        s.put_guardrail_policy("mine", {"rules": []}, "sha256:" + "1" * 64)
    with system_scope():
        s.put_guardrail_policy("default", {"rules": []}, "sha256:" + "2" * 64, builtin=True)
    with project_scope("marketing"):
        assert s.get_guardrail_policy("default") is not None and s.get_guardrail_policy("mine") is None
        with pytest.raises(PlinthError) as e:
            s.put_guardrail_policy("default", {"rules": [1]}, "sha256:" + "3" * 64)
        assert e.value.code is ErrorCode.PERMISSION_DENIED
    with system_scope():
        assert s.get_guardrail_policy("default").version == 1  # unchanged


def test_ids_of_another_project_cannot_be_changed_or_deleted(two: SqlStore) -> None:
    s = two
    queue = s.list_queues()[0].name if s.list_queues() else None
    if queue is None:
        from plinth.domain.jobs import Queue

        queue = s.add_queue(Queue(name="default", quota=Resources(cpu=4, memory=8 << 30, gpus=0))).name
    job = Job(id="j" + "0" * 23, kind="noop", spec={}, queue=queue, priority_class="normal", priority=0, resources=Resources(1, 1 << 20, 0))
    with project_scope("claims"):
        stored, _ = s.add_job(job)
        assert stored.project == "claims"
    with project_scope("marketing"):
        for action in (lambda: s.get_job(job.id), lambda: s.cancel_job(job.id), lambda: s.job_logs(job.id)):
            with pytest.raises(PlinthError) as e:
                action()
            assert e.value.code is ErrorCode.NOT_FOUND
        assert s.list_jobs(JobFilter()) == []
    with system_scope():  # the scheduler sees every project's jobs
        assert [j.id for j in s.list_jobs(JobFilter())] == [job.id]


def test_a_queue_of_one_project_takes_no_other_projects_jobs(two: SqlStore) -> None:
    from plinth.domain.jobs import Queue

    s = two
    s.add_queue(Queue(name="claims-gpu", quota=Resources(cpu=4, memory=8 << 30, gpus=0), project="claims"))
    job = Job(
        id="k" + "0" * 23, kind="noop", spec={}, queue="claims-gpu", priority_class="normal", priority=0, resources=Resources(1, 1, 0)
    )
    with project_scope("marketing"), pytest.raises(PlinthError) as e:
        s.add_job(job)
    assert e.value.code is ErrorCode.NOT_FOUND
    with project_scope("claims"):
        assert s.add_job(job)[1]


def test_keys_audit_and_usage_belong_to_their_project(two: SqlStore) -> None:
    s = two
    with project_scope("claims"):
        key = s.create_api_key(ApiKey(id="a" * 12, name="app", scopes=frozenset({Scope.INFERENCE})), "h" * 64)
        assert key.project == "claims"
    with project_scope("marketing"):
        assert s.find_api_key_by_name("app") is None and s.list_api_keys() == []
        s.create_api_key(ApiKey(id="b" * 12, name="app", scopes=frozenset({Scope.READ})), "h" * 64)  # the same name: its own
    with system_scope():  # authentication finds a key by id whatever its project
        found = s.find_api_key("a" * 12)
        assert found is not None and found[0].project == "claims"


def test_a_strict_store_refuses_calls_outside_any_scope(store_url: str) -> None:
    strict = SqlStore(store_url, strict=True)
    try:
        with system_scope():
            strict.migrate()
        with pytest.raises(PlinthError) as e:
            strict.list_models()
        assert e.value.code is ErrorCode.INTERNAL
        with project_scope("default"):
            assert strict.list_models() == []
    finally:
        strict.close()


def test_projects_users_and_memberships(two: SqlStore) -> None:
    s = two
    s.create_user(User(name="alice"), "scrypt$x")
    s.set_membership("alice", "claims", MemberRole.OWNER)
    assert s.find_membership("alice", "claims").role is MemberRole.OWNER
    assert s.find_membership("alice", "marketing") is None
    s.set_membership("alice", "claims", MemberRole.VIEWER)
    assert [m.role for m in s.list_memberships(user="alice")] == [MemberRole.VIEWER]
    with pytest.raises(PlinthError) as e:
        s.set_membership("bob", "claims", MemberRole.VIEWER)
    assert e.value.code is ErrorCode.NOT_FOUND
    with project_scope("claims"):
        s.add_dataset_version(_version("faq"))
    assert s.project_resource_counts("claims") == {"dataset_versions": 1, "datasets": 1}
    assert s.project_storage_bytes("claims") == 123
    with pytest.raises(PlinthError) as e:
        s.delete_project("claims")
    assert e.value.code is ErrorCode.CONFLICT and "datasets" in e.value.message
    s.update_project("marketing", quotas=ProjectQuotas(budget_tokens=1000, budget_period="day"))
    assert s.find_project("marketing").quotas.budget_tokens == 1000
    assert s.delete_project("marketing").name == "marketing"
    assert [p.name for p in s.list_projects()] == ["claims", "default"]
    s.delete_user("alice")
    assert s.list_memberships(project="claims") == []


def test_login_sessions(store: SqlStore) -> None:
    s = store
    s.create_user(User(name="bob"), None)
    now = datetime.now(UTC)
    s.create_login_session("s1", "h1", "c1", "bob", now=now, expires_at=now)
    assert s.find_login_session("s1")[:3] == ("bob", "h1", "c1")
    assert s.delete_login_sessions(expired_before=datetime.now(UTC)) == 1
    assert s.find_login_session("s1") is None
    assert SHARED == ""


def test_a_projects_token_budget_holds_over_all_its_keys(two: SqlStore) -> None:
    s = two
    s.update_project("claims", quotas=ProjectQuotas(budget_tokens=100, budget_period="day"))
    now = datetime.now(UTC)
    with project_scope("claims"):
        for key_id in ("c" * 12, "d" * 12):
            s.create_api_key(ApiKey(id=key_id, name=key_id, scopes=frozenset({Scope.INFERENCE})), "h" * 64)
        first = s.reserve("c" * 12, requests=1, tokens=60, now=now, project="claims")
        with pytest.raises(PlinthError) as e:  # another key of the same project: the project's budget is shared
            s.reserve("d" * 12, requests=1, tokens=60, now=now, project="claims")
        assert e.value.code is ErrorCode.RATE_LIMITED and e.value.details["limit"] == "project_budget"
        s.settle_many([(first, 10)])  # it used 10 of the 60 it reserved
        assert s.reserve("d" * 12, requests=1, tokens=60, now=now, project="claims").project_budget_start is not None
        # a call without a key (a logged-in user) is charged to the project alone
        with pytest.raises(PlinthError):
            s.reserve(None, requests=1, tokens=40, now=now, project="claims")
        assert s.reserve(None, requests=1, tokens=30, now=now, project="claims").key_id is None
    with project_scope("marketing"):  # no budget: nothing charged
        assert s.reserve(None, requests=1, tokens=10**9, now=now, project="marketing").project_budget_start is None


def test_a_projects_storage_quota(two: SqlStore) -> None:
    s = two
    s.update_project("claims", quotas=ProjectQuotas(storage_bytes=200))
    with project_scope("claims"):
        s.check_storage_quota(200)
        s.add_dataset_version(_version("faq"))  # 123 bytes, by its stats
        s.check_storage_quota(77)
        with pytest.raises(PlinthError) as e:
            s.check_storage_quota(78)
        assert e.value.code is ErrorCode.PAYLOAD_TOO_LARGE and "claims" in e.value.message
    with project_scope("marketing"):
        s.check_storage_quota(10**12)  # no quota
