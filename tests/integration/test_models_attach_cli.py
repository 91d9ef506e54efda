"""``plinth models attach`` on registry ids (``acme-faq@1``): showing what is attached (no
options) resolves the id exactly as attaching does, through the model registry, and the
management API's GET answers the same. Run in this process with tests/support/cli.py on a
home where an adapter is registered as ``acme-faq`` version 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.config import load_settings
from plinth.errors import ErrorCode, PlinthError
from plinth.services import build_services
from tests.support import cli
from tests.support.adapters import LLAMA_ATTN, random_peft_llama_tensors, write_peft_dir

BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("attach-home")
    tensors = random_peft_llama_tensors(
        n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=2, modules=LLAMA_ATTN, seed=3, scale=0.1
    )
    adapter = write_peft_dir(home / "adapter", tensors, r=2, alpha=4.0, target_modules=list(LLAMA_ATTN))
    s = build_services(load_settings(home=home, threads=1, context_length=512))
    try:
        s.catalog.ensure_embedded()
        assert s.registry is not None
        s.registry.register_adapter("acme-faq", base_model=BASE, adapter_dir=adapter, description="FAQ adapter")
    finally:
        s.close()
    yield home


def _attach(home: Path, *args: str) -> tuple[int, str, str]:
    out = cli.plinth(home, "models", "attach", *args, COLUMNS="200")
    return out.returncode, out.stdout, out.stderr


def test_showing_a_registry_id_with_no_options_works(home: Path) -> None:
    rc, out, err = _attach(home, "acme-faq@1")
    assert rc == 0, err
    assert "attached to acme-faq@1" in out and "knowledge base" in out and "does not exist" not in out + err


def test_show_after_attach_reads_back_what_was_attached(home: Path) -> None:
    rc, out, err = _attach(home, "acme-faq@1", "--system-prompt", "Answer from Acme's documents only.")
    assert rc == 0, err
    rc, out, err = _attach(home, "acme-faq@1")
    assert rc == 0, err
    assert "Answer from Acme's documents only." in out
    # the bare name and the catalog id of the same version are other ids, each valid
    for model_id in ("acme-faq", f"{BASE}:acme-faq-v1", BASE):
        rc, out, err = _attach(home, model_id)
        assert rc == 0 and model_id in "".join(out.split()), (model_id, err)  # the title may wrap


@pytest.mark.parametrize("model_id", ["acme-faq@2", "acme-faq@0", "nope@1", "nope", f"{BASE}:nope"])
def test_ids_that_name_nothing_are_refused_the_same_way_with_and_without_options(home: Path, model_id: str) -> None:
    rc, out, err = _attach(home, model_id)
    assert rc != 0 and err.startswith("error:") and "does not exist" in err and "Traceback" not in err, (out, err)
    rc2, _out2, err2 = _attach(home, model_id, "--system-prompt", "x")
    assert rc2 == rc and err2 == err


def test_the_service_and_the_api_route_check_ids_the_same_way(home: Path) -> None:
    from fastapi.testclient import TestClient

    from plinth.api.app import create_app

    s = build_services(load_settings(home=home, threads=1, context_length=512))
    try:
        assert s.attachments.show("acme-faq@1").system_prompt == "Answer from Acme's documents only."
        with pytest.raises(PlinthError) as e:
            s.attachments.show("acme-faq@7")
        assert e.value.code is ErrorCode.MODEL_NOT_FOUND
        with TestClient(create_app(s)) as api:
            r = api.get("/api/v1/models/acme-faq@1/attachments")
            assert r.status_code == 200 and r.json()["system_prompt"] == "Answer from Acme's documents only.", r.text
            assert api.get("/api/v1/models/acme-faq@7/attachments").status_code == 404
    finally:
        s.close()
