"""Versioned datasets on the real embedded model's tokenizer, the real artifact store and SQLite:
validation with line numbers, forms and file formats, splits, versions, diff, loading, removal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.tuning.datasets import assign_validation, parse_ref

REPO = Path(__file__).resolve().parents[3]
FAQ = REPO / "examples" / "acme-health" / "faq.jsonl"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from plinth.cli.common import ensure_embedded
    from plinth.config import load_settings
    from plinth.services import build_services

    home = tmp_path_factory.mktemp("datasets-home")
    svc = build_services(load_settings(home=home, dataset_max_bytes=200_000))
    ensure_embedded(svc)
    yield svc
    svc.close()


def chat(q: str, a: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], **extra}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def problems(e: PlinthError) -> list[tuple[int | None, str]]:
    return [(p.get("line", p.get("row")), p["message"]) for p in e.details["problems"]]


def refused(fn, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> PlinthError:  # type: ignore[no-untyped-def]
    with pytest.raises(PlinthError) as e:
        fn()
    assert e.value.code is code, e.value.message
    return e.value


def test_every_problem_is_reported_with_its_line(services: Any, tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            chat("fine", "fine"),
            "{not json",
            {"messages": [{"role": "user", "content": "no answer"}]},
            "",  # blank lines are skipped but counted
            {"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]},
            {"prompt": "p", "completion": "c"},
            [1, 2],
            {"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "late"}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "   "}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 7}]},
            chat("q", "a", split="holdout"),
            {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "a"}]},
        ],
    )
    (tmp_path / "bin.jsonl").write_bytes(json.dumps(chat("a", "b")).encode() + b"\n\xff\xfe\n")
    e = refused(lambda: services.datasets.add(f, "bad"))
    got = problems(e)
    assert [line for line, _ in got] == [2, 3, 5, 6, 7, 8, 9, 10, 11, 12]
    text = dict(got)
    assert "not valid JSON" in text[2]
    assert "last message must be the assistant's" in text[3]
    assert "role must be one of system, user, assistant; got 'bot'" in text[5]
    assert "a prompt_completion row in a chat dataset (line 1 set the form)" in text[6]
    assert "expected an object, got a list" in text[7]
    assert "system message must be the first" in text[8]
    assert "messages[1].content is empty" in text[9]
    assert "content must be a string" in text[10]
    assert "'split' must be train or validation" in text[11]
    assert "tool calls are not supported" in text[12]
    assert e.details["total_problems"] == 10 and "has 10 problems: line 2:" in e.message
    e = refused(lambda: services.datasets.add(tmp_path / "bin.jsonl", "bad"))
    assert problems(e) == [(2, "not valid UTF-8 (byte 1)")]
    with pytest.raises(PlinthError):
        services.datasets.get("bad")  # nothing was stored


def test_problems_are_capped_but_counted(services: Any, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "many.jsonl", [chat("q", "a")] + ["[]"] * 120)
    e = refused(lambda: services.datasets.add(f, "many"))
    assert len(e.details["problems"]) == 50 and e.details["total_problems"] == 120
    assert "(and 115 more)" in e.message


def test_files_that_cannot_be_a_dataset(services: Any, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert "has no rows" in refused(lambda: services.datasets.add(tmp_path / "empty.jsonl", "e")).message
    (tmp_path / "data.bin").write_bytes(b"\x00\x01binary")
    refused(lambda: services.datasets.add(tmp_path / "data.bin", "e"), ErrorCode.UNSUPPORTED_FORMAT)
    refused(lambda: services.datasets.add(tmp_path / "missing.jsonl", "e"), ErrorCode.NOT_FOUND)
    refused(lambda: services.datasets.add(tmp_path, "e"))
    big = write_jsonl(tmp_path / "big.jsonl", [chat("q" * 1000, "a")] * 250)
    refused(lambda: services.datasets.add(big, "e"), ErrorCode.PAYLOAD_TOO_LARGE)
    refused(lambda: services.datasets.add(FAQ, "bad name!"))
    refused(lambda: services.datasets.add(FAQ, "e", validation_fraction=0.9))
    refused(lambda: services.datasets.add(FAQ, "e", seed=-1))
    refused(lambda: services.datasets.add(FAQ, "e", source_format="xlsx"), ErrorCode.UNSUPPORTED_FORMAT)
    e = refused(lambda: services.datasets.add(FAQ, "e", model="no-such-model"), ErrorCode.MODEL_NOT_FOUND)
    assert e.param == "model"
    assert services.datasets.list() == [] or all(d.name != "e" for d, _ in services.datasets.list())


def test_the_example_faq_versions_and_noop(services: Any) -> None:
    v, created = services.datasets.add(FAQ, "acme-faq", description="Acme Health FAQ")
    assert created and v.ref == "acme-faq@1" and v.rows == 303 and v.format.value == "chat"
    assert (v.train_rows, v.validation_rows) == (273, 30)
    again, created = services.datasets.add(FAQ, "acme-faq")
    assert not created and again.ref == "acme-faq@1"  # identical content: a no-op
    other_seed, created = services.datasets.add(FAQ, "acme-faq", seed=7)
    assert created and other_seed.ref == "acme-faq@2" and other_seed.digest == v.digest  # same rows, new split
    assert other_seed.split_digest != v.split_digest
    assert services.datasets.get("acme-faq").version == 2 and services.datasets.get("acme-faq@1").version == 1
    assert [x.version for x in services.datasets.versions("acme-faq")] == [1, 2]
    assert services.datasets.dataset("acme-faq").description == "Acme Health FAQ"
    e = refused(lambda: services.datasets.get("acme-faq@9"), ErrorCode.NOT_FOUND)
    assert "latest is 2" in e.message
    # The rows and split are content-addressed blobs in the artifact store.
    assert services.artifacts.verify(v.digest) and services.artifacts.verify(v.source_digest)


def test_token_statistics_use_the_models_tokenizer_and_template(services: Any, tmp_path: Path) -> None:
    import llama_cpp

    rows = [chat("What is my Gold deductible?", "$500 per member."), chat("¿Cubre la óptica?", "Sí, una vez al año.")]
    v, _ = services.datasets.add(write_jsonl(tmp_path / "t.jsonl", rows), "tokens", validation_fraction=0)
    record = services.catalog.get(services.settings.default_model)
    oracle = llama_cpp.Llama(model_path=str(services.catalog.model_path(record)), vocab_only=True, verbose=False)
    from plinth.runtimes.text import ChatTemplate

    template = ChatTemplate(record.chat_template)
    totals = [
        len(oracle.tokenize(template.render(r["messages"], add_generation_prompt=False).encode(), add_bos=False, special=True))
        for r in rows
    ]
    trained = [len(oracle.tokenize(r["messages"][1]["content"].encode(), add_bos=False, special=False)) for r in rows]
    st = v.stats
    assert st["tokenizer"]["model"] == record.name and st["tokenizer"]["digest"] == record.digest
    assert st["tokens"]["total"] == sum(totals) and st["tokens"]["max"] == max(totals)
    assert st["trained_tokens"]["total"] == sum(trained)
    assert st["train_tokens"] == sum(totals) and st["validation_tokens"] == 0
    assert totals[0] > trained[0] + 10  # the template's system prompt and markers are counted


def test_split_is_seeded_stable_and_explicit_rows_are_kept(services: Any, tmp_path: Path) -> None:
    rows = [chat(f"question {i}", f"answer {i}") for i in range(200)]
    val = set(assign_validation(rows, 0.1, 0))
    assert len(val) == 20 and val == set(assign_validation(rows, 0.1, 0))
    assert val != set(assign_validation(rows, 0.1, 1))
    # Adding rows keeps almost every earlier row on its side (no leakage between versions).
    more = rows + [chat(f"new {i}", f"new answer {i}") for i in range(20)]
    val_more = set(assign_validation(more, 0.1, 0))
    kept = {rows_i for rows_i in val if rows_i in val_more}
    assert len(kept) >= 17
    assert assign_validation(rows[:1], 0.1, 0) == []  # one row: nothing held out
    assert len(assign_validation(rows[:3], 0.1, 0)) == 1  # a small set still gets one
    explicit = [chat("a", "b", split="validation"), chat("c", "d", split="train"), *rows[:10]]
    v, _ = services.datasets.add(write_jsonl(tmp_path / "e.jsonl", explicit), "explicit", validation_fraction=0.2)
    val_rows = services.datasets.load_rows(v, "validation")
    assert explicit[0]["messages"] in [r["messages"] for r in val_rows]
    assert explicit[1]["messages"] not in [r["messages"] for r in val_rows]
    assert v.validation_rows == 1 + 2 and v.train_rows == 9


def test_prompt_completion_csv_and_parquet_load_as_messages(services: Any, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = [("What is covered?", "Preventive care."), ("Is dental included?", 'Yes, "basic" dental,\nwith a waiting period.')]
    j, _ = services.datasets.add(
        write_jsonl(tmp_path / "pc.jsonl", [{"prompt": p, "completion": c, "id": i} for i, (p, c) in enumerate(pairs)]),
        "pc",
        validation_fraction=0,
    )
    assert j.format.value == "prompt_completion"
    import csv

    with open(tmp_path / "pc.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "completion"])
        w.writerows(pairs)
    c, created = services.datasets.add(tmp_path / "pc.csv", "pc-csv", validation_fraction=0)
    assert created and c.source_format.value == "csv"
    pq.write_table(pa.table({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]}), tmp_path / "pc.parquet")
    p, _ = services.datasets.add(tmp_path / "pc.parquet", "pc-parquet", validation_fraction=0)
    assert p.source_format.value == "parquet"
    assert c.digest == p.digest  # the same rows, whatever the file format
    expected = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in pairs]
    for ref in ("pc@1", "pc-csv", "pc-parquet@1"):
        assert services.datasets.load_messages(ref, "train") == expected
    assert services.datasets.load_rows("pc", "train")[0]["id"] == 0  # kept fields survive
    # Problems in CSV and Parquet come with their line and row.
    (tmp_path / "bad.csv").write_text('prompt,completion\n"ok","fine"\n"","empty prompt"\n"x"\n', encoding="utf-8")
    e = refused(lambda: services.datasets.add(tmp_path / "bad.csv", "bad-csv"))
    assert problems(e) == [(3, "'prompt' is empty"), (4, "has 1 fields; the header has 2")]
    (tmp_path / "hdr.csv").write_text("question,answer\na,b\n", encoding="utf-8")
    assert "needs columns prompt and completion" in refused(lambda: services.datasets.add(tmp_path / "hdr.csv", "h")).message
    pq.write_table(pa.table({"prompt": ["a", "b"], "completion": ["fine", ""]}), tmp_path / "bad.parquet")
    e = refused(lambda: services.datasets.add(tmp_path / "bad.parquet", "bad-pq"))
    assert problems(e) == [(2, "'completion' is empty")]
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    assert "not a readable Parquet file" in refused(lambda: services.datasets.add(tmp_path / "broken.parquet", "b")).message


def test_chat_weights_content_parts_and_ignored_fields(services: Any, tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "draft", "weight": 0},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "final", "extra": 1},
        ],
        "source": "crm",
    }
    v, _ = services.datasets.add(write_jsonl(tmp_path / "w.jsonl", [row]), "weights", validation_fraction=0)
    (msgs,) = services.datasets.load_messages(v)
    assert msgs[0] == {"role": "system", "content": "Be brief."} and msgs[1]["content"] == "Hi there"
    assert msgs[2] == {"role": "assistant", "content": "draft", "weight": 0} and "extra" not in msgs[4]
    assert v.stats["ignored_fields"] == {"source": 1, "messages.extra": 1}
    bad = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}
    e = refused(lambda: services.datasets.add(write_jsonl(tmp_path / "w0.jsonl", [bad]), "w0"))
    assert "nothing would be learned" in e.message


def test_diff_between_versions(services: Any, tmp_path: Path) -> None:
    base = [chat(f"q{i}", f"a{i}") for i in range(10)]
    services.datasets.add(write_jsonl(tmp_path / "v1.jsonl", base), "d")
    changed = [*base[:7], chat("q7", "a7 corrected"), chat("new", "row"), chat("new2", "row2")]  # q8, q9 removed
    services.datasets.add(write_jsonl(tmp_path / "v2.jsonl", changed), "d")
    d = services.datasets.diff("d@1", "d@2", samples=10)
    assert (d.added, d.removed, d.changed, d.unchanged) == (2, 2, 1, 7)
    assert d.samples["changed"] == [{"before": base[7], "after": changed[7]}]
    assert {r["messages"][0]["content"] for r in d.samples["removed"]} == {"q8", "q9"}
    same = services.datasets.diff("d@2", "d")
    assert (same.added, same.removed, same.changed, same.unchanged) == (0, 0, 0, 10)


def test_refs_and_removal(services: Any, tmp_path: Path) -> None:
    assert parse_ref("acme-faq@2").version == 2 and parse_ref("acme-faq").version is None
    assert parse_ref("acme-faq@latest").version is None
    for bad in ("acme faq", "x@0", "x@one", "@3", "../etc"):
        refused(lambda bad=bad: parse_ref(bad))
    v, _ = services.datasets.add(write_jsonl(tmp_path / "gone.jsonl", [chat("unique to gone", "x")]), "gone")
    shared, _ = services.datasets.add(write_jsonl(tmp_path / "keep.jsonl", [chat("unique to gone", "x")]), "keep")
    assert shared.digest == v.digest
    removed = services.datasets.delete("gone")
    assert [x.ref for x in removed] == ["gone@1"]
    refused(lambda: services.datasets.get("gone"), ErrorCode.NOT_FOUND)
    assert services.artifacts.exists(v.digest)  # still used by "keep"
    services.datasets.delete("keep")
    assert not services.artifacts.exists(v.digest)
