"""The real ``plinth`` command line with a fresh PLINTH_HOME: in this process through
:mod:`tests.support.cli`, and as real subprocesses where only a process shows it (what
``--help`` imports, the error line and exit code on a real pipe, a SIGKILL mid-import)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from plinth.formats import locate_embedded_gguf
from plinth.store.artifacts import ArtifactStore
from plinth.store.sql import head_revision
from tests.support import cli
from tests.support.cli import cli_env
from tests.support.tiny_hf import make_tiny_llama

EMBEDDED = "smollm2-135m-instruct"


def plinth(home: Path, *args: str, timeout: float = 240, subprocess: bool = False, **extra_env: str) -> CompletedProcess[str]:
    """``plinth ARGS`` in this process (``subprocess=True``: as ``python -m plinth``)."""
    proc = cli.plinth(home, *args, timeout=timeout, subprocess=subprocess, **extra_env)
    assert "Traceback" not in proc.stdout + proc.stderr, f"plinth {' '.join(args)} crashed:\n{proc.stderr}"
    return proc


def ok(home: Path, *args: str, **extra_env: str) -> str:
    proc = plinth(home, *args, **extra_env)
    assert proc.returncode == 0, f"plinth {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def fails(home: Path, *args: str, subprocess: bool = False, **extra_env: str) -> str:
    """Run a command that must fail cleanly; return its one ``error:`` line."""
    proc = plinth(home, *args, subprocess=subprocess, **extra_env)
    assert proc.returncode != 0, f"plinth {' '.join(args)} should have failed:\n{proc.stdout}"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one line starting with 'error:' on stderr, got:\n{proc.stderr}"
    return errors[0]


def models_json(home: Path) -> list[dict]:
    return json.loads(ok(home, "models", "list", "--json"))


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PLINTH_HOME for the module, with the embedded model prepared."""
    h = tmp_path_factory.mktemp("cli-home")
    ok(h, "models", "list")
    return h


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-sources")


@pytest.fixture(scope="module")
def tiny(home: Path, sources: Path) -> dict:
    """The tiny HF model, added as ``tiny``; returns ``models show tiny --json``."""
    built = make_tiny_llama(sources / "tiny-llama")
    copy = Path(shutil.copytree(built, sources / "tiny-copy"))
    out = ok(home, "models", "add", str(copy), "--name", "tiny")
    assert "added" in out and "tiny" in out
    return json.loads(ok(home, "models", "show", "tiny", "--json"))


@pytest.fixture(scope="module")
def gguf_copy(sources: Path) -> Path:
    dest = sources / "SmolLM Copy.Q4_1.gguf"
    shutil.copyfile(locate_embedded_gguf(), dest)
    return dest


# -- models ------------------------------------------------------------------------------------
def test_first_run_prepares_the_embedded_model_once(tmp_path: Path) -> None:
    # a wide terminal: at 80 columns the table truncates every cell (see the report)
    first = plinth(tmp_path, "models", "list", COLUMNS="200")
    assert first.returncode == 0, first.stderr
    assert EMBEDDED in first.stdout
    assert "built in" in first.stdout
    assert "Preparing the embedded model" in first.stderr
    second = plinth(tmp_path, "models", "list")
    assert second.returncode == 0
    assert "Preparing" not in second.stderr
    assert (tmp_path / "plinth.db").is_file()


def test_models_list_json(home: Path) -> None:
    models = {m["name"]: m for m in models_json(home)}
    smol = models[EMBEDDED]
    assert smol["builtin"] is True
    assert smol["format"] == "gguf" and smol["runtime"] == "llamacpp"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", smol["digest"])
    assert smol["architecture"] == "llama"
    assert smol["context_length"] == 8192
    assert smol["size_bytes"] == locate_embedded_gguf().stat().st_size
    assert ArtifactStore(home / "artifacts").exists(smol["digest"])


def test_add_and_show_a_hugging_face_directory(home: Path, tiny: dict) -> None:
    assert tiny["name"] == "tiny"
    assert tiny["format"] == "safetensors"
    assert tiny["runtime"] == "torch"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", tiny["digest"])
    # HF directories report config.json's class name, GGUF files general.architecture
    assert tiny["architecture"] in ("llama", "LlamaForCausalLM")
    assert tiny["context_length"] == 512
    assert tiny["license"] and tiny["license"].lower() == "apache-2.0"
    assert tiny["builtin"] is False
    assert tiny["has_chat_template"] is True and "<|im_start|>" in tiny["chat_template"]
    assert "tiny" in [m["name"] for m in models_json(home)]
    # the human form shows the same record
    out = ok(home, "models", "show", "tiny", COLUMNS="200")
    assert "safetensors" in out and "torch" in out and tiny["digest"] in out


def test_add_a_gguf_under_another_name_then_remove_it(home: Path, gguf_copy: Path) -> None:
    smol_digest = next(m for m in models_json(home) if m["name"] == EMBEDDED)["digest"]
    out = ok(home, "models", "add", str(gguf_copy), "--name", "smol-copy")
    assert "smol-copy" in out
    shown = json.loads(ok(home, "models", "show", "smol-copy", "--json"))
    assert shown["format"] == "gguf" and shown["runtime"] == "llamacpp"
    assert shown["digest"] == smol_digest, "the same bytes have the same content address"
    assert shown["source"] == str(gguf_copy.resolve())
    assert "smol-copy" in [m["name"] for m in models_json(home)]

    out = ok(home, "models", "rm", "smol-copy")
    assert "removed" in out
    assert "smol-copy" not in [m["name"] for m in models_json(home)]
    # the blob is shared with the built-in model: it must survive the removal
    assert ArtifactStore(home / "artifacts").exists(smol_digest)
    assert "does not exist" in fails(home, "models", "show", "smol-copy")


def test_add_derives_the_name_from_the_file_name(home: Path, gguf_copy: Path) -> None:
    out = ok(home, "models", "add", str(gguf_copy))
    assert "smollm-copy.q4_1" in out
    assert "smollm-copy.q4_1" in [m["name"] for m in models_json(home)]
    ok(home, "models", "rm", "smollm-copy.q4_1")


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("pickle", ["pytorch_model.bin", "pickle"]),
        ("truncated", ["truncated.gguf", "not a valid GGUF file", "truncated"]),
        ("missing", ["does-not-exist.gguf", "does not exist"]),
        ("duplicate", ["'tiny'", "already exists"]),
        ("bad-name", ["invalid model name", "'no spaces please'"]),
        ("wrong-runtime", ["runtime 'llamacpp'", "safetensors"]),
        ("unknown-runtime", ["unknown runtime 'vllm'"]),
        ("rm-builtin", [f"'{EMBEDDED}'", "built in"]),
        ("rm-missing", ["'nope'", "does not exist"]),
        ("show-missing", ["'nope'", "does not exist"]),
    ],
)
def test_errors_are_one_clear_line_never_a_traceback(
    home: Path, sources: Path, tiny: dict, gguf_copy: Path, case: str, needles: list[str]
) -> None:
    before = models_json(home)
    bad = sources / "bad"
    bad.mkdir(exist_ok=True)
    pickle_file = bad / "pytorch_model.bin"
    pickle_file.write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.")
    truncated = bad / "truncated.gguf"
    with open(locate_embedded_gguf(), "rb") as f:
        truncated.write_bytes(f.read(1_000_000))
    tiny_src = sources / "tiny-copy"
    args = {
        "pickle": ["models", "add", str(pickle_file)],
        "truncated": ["models", "add", str(truncated)],
        "missing": ["models", "add", str(bad / "does-not-exist.gguf")],
        "duplicate": ["models", "add", str(tiny_src), "--name", "tiny"],
        "bad-name": ["models", "add", str(gguf_copy), "--name", "no spaces please"],
        "wrong-runtime": ["models", "add", str(tiny_src), "--name", "x", "--runtime", "llamacpp"],
        "unknown-runtime": ["models", "add", str(gguf_copy), "--name", "x", "--runtime", "vllm"],
        "rm-builtin": ["models", "rm", EMBEDDED],
        "rm-missing": ["models", "rm", "nope"],
        "show-missing": ["models", "show", "nope"],
    }[case]
    line = fails(home, *args)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert models_json(home) == before, "a failed command must not change the catalog"


def test_failed_imports_leave_the_store_and_the_artifacts_as_they_were(home: Path, sources: Path, tiny: dict) -> None:
    before = models_json(home)
    blobs_before = sorted(p.relative_to(home) for p in (home / "artifacts").rglob("*") if p.is_file())
    broken = sources / "broken-models"
    broken.mkdir(exist_ok=True)
    (broken / "empty.gguf").write_bytes(b"")
    (broken / "header-only.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    hf = Path(shutil.copytree(sources / "tiny-copy", broken / "hf-no-config", dirs_exist_ok=True))
    (hf / "config.json").unlink()
    for path in ("empty.gguf", "header-only.gguf", "hf-no-config"):
        assert fails(home, "models", "add", str(broken / path), "--name", "never").startswith("error: ")
    after = models_json(home)
    assert after == before
    assert {m["name"] for m in after} >= {EMBEDDED, "tiny"}
    blobs_after = sorted(p.relative_to(home) for p in (home / "artifacts").rglob("*") if p.is_file())
    assert blobs_after == blobs_before, "nothing is copied for a model that fails inspection"


def test_a_killed_import_loses_nothing(home: Path, gguf_copy: Path, tiny: dict) -> None:
    before = models_json(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plinth", "models", "add", str(gguf_copy), "--name", "killed"],
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tmp_dir = home / "artifacts" / "tmp"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if tmp_dir.is_dir() and any(tmp_dir.iterdir()):  # mid-copy
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    after = {m["name"]: m for m in models_json(home)}
    assert {m["name"] for m in before} <= set(after)
    for m in before:
        assert after[m["name"]] == m
    if proc.returncode == -signal.SIGKILL:
        assert "killed" not in after, "a model appears only once its bytes are stored"
    # importing again works either way
    if "killed" in after:
        ok(home, "models", "rm", "killed")
    ok(home, "models", "add", str(gguf_copy), "--name", "killed")
    ok(home, "models", "rm", "killed")


def test_invalid_settings_are_a_clear_error(home: Path) -> None:
    # a real process: the exit code and one error line on its stderr, no traceback at the top level
    line = fails(home, "models", "list", subprocess=True, PLINTH_PORT="not-a-port")
    assert "PLINTH_PORT" in line
    line = fails(home, "models", "list", PLINTH_IMPORT_DIRS="/srv/models")
    assert "PLINTH_IMPORT_DIRS" in line
    line = fails(home, "--config", str(home / "missing.yaml"), "models", "list")
    assert "missing.yaml" in line and "does not exist" in line


def test_long_error_messages_are_not_wrapped_inside_paths(home: Path, sources: Path) -> None:
    deep = sources / ("a-rather-long-directory-name-" * 3) / "nested-again"
    deep.mkdir(parents=True, exist_ok=True)
    weights = deep / "pytorch_model.bin"
    weights.write_bytes(b"\x80\x04.")
    line = fails(home, "models", "add", str(weights), subprocess=True)  # a real pipe, at its 80 columns
    assert str(weights) in line


def test_in_process_runs_print_what_a_real_process_prints(home: Path) -> None:
    """The in-process runner these tests use (tests/support/cli.py) against ``python -m plinth``:
    a table at 80 columns, an error line and exit code 1, a usage error and exit code 2."""
    for args in (["models", "list"], ["models", "show", "nope"], ["models", "show"]):
        here, real = plinth(home, *args), plinth(home, *args, subprocess=True)
        assert (here.returncode, here.stdout, here.stderr) == (real.returncode, real.stdout, real.stderr), args


# -- other commands ----------------------------------------------------------------------------
def test_doctor_lists_the_runtimes(home: Path) -> None:
    out = ok(home, "doctor")
    for runtime in ("llamacpp", "torch", "openai"):
        assert f"runtime {runtime}" in out
    assert "available" in out
    assert str(home) in out


def test_chat_answers_one_message(home: Path) -> None:
    # One llama.cpp thread: with every core busy-waiting, llama.cpp slows down 50x as soon as
    # another process wants a core (docs/adr/0004); one thread keeps this test at ~1 s.
    out = ok(home, "chat", "--message", "Say hello", "--max-tokens", "8", "--temperature", "0", PLINTH_THREADS="1")
    assert "assistant>" in out
    answer = out.split("assistant>", 1)[1].strip()
    assert answer, f"empty answer:\n{out}"


def test_chat_with_an_unknown_model_is_a_clear_error(home: Path) -> None:
    line = fails(home, "chat", "--model", "nope", "--message", "hi", "--max-tokens", "4")
    assert "'nope'" in line


def test_help_works_and_imports_no_inference_library(tmp_path: Path) -> None:
    out = ok(tmp_path, "--help")
    for command in ("up", "chat", "models", "db", "doctor"):
        assert command in out
    assert "add" in ok(tmp_path, "models", "--help")
    assert not (tmp_path / "plinth.db").exists(), "--help must not touch the data directory"

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "plinth", "--help"],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "typer" in imported, "importtime output was not captured"
    heavy = {m for m in imported if m.split(".")[0] in {"torch", "transformers", "llama_cpp", "safetensors"}}
    assert not heavy, f"plinth --help imported {sorted(heavy)}"

    check = (
        "import sys, plinth.cli.main, plinth.api.app; "
        "bad = sorted(m for m in ('torch', 'transformers', 'llama_cpp') if m in sys.modules); "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", check], env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_db_upgrade_prints_the_revision(tmp_path: Path) -> None:
    out = ok(tmp_path, "db", "upgrade")
    assert f"schema at revision {head_revision()}" in out
    assert "sqlite:///" in out
    # idempotent
    assert f"schema at revision {head_revision()}" in ok(tmp_path, "db", "upgrade")


def test_version(tmp_path: Path) -> None:
    from plinth import __version__

    assert ok(tmp_path, "version").strip() == f"plinth {__version__}"
