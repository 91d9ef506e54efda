"""Settings: defaults, PLINTH_* variables, YAML/TOML config files, precedence, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plinth.config import EMBEDDED_MODEL_NAME, Settings, load_settings
from plinth.errors import ErrorCode, PlinthError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PLINTH_* variable from the outside, and a private ~ (so ~/.plinth/config.yaml of
    whoever runs the tests is never read). Returns the fake home directory."""
    for key in list(os.environ):
        if key.startswith("PLINTH_"):
            monkeypatch.delenv(key)
    user_home = tmp_path / "user"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    return user_home


def invalid(**kw: object) -> PlinthError:
    with pytest.raises(PlinthError) as info:
        load_settings(**kw)
    assert info.value.code == ErrorCode.INVALID_REQUEST
    return info.value


# -- defaults ----------------------------------------------------------------------------------
def test_defaults(clean_env: Path) -> None:
    s = load_settings()
    assert s.home == (clean_env / ".plinth").resolve()
    assert s.database_url == f"sqlite:///{s.home / 'plinth.db'}"
    assert s.import_dirs == [s.home / "imports"]
    assert s.host == "127.0.0.1" and s.port == 8000
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.default_model == EMBEDDED_MODEL_NAME
    assert s.log_level == "info"
    assert s.artifacts_dir == s.home / "artifacts"
    assert s.models_dir == s.home / "models"
    assert 1 <= s.threads <= 8


def test_building_settings_creates_nothing_on_disk(tmp_path: Path) -> None:
    home = tmp_path / "h"
    load_settings(home=home)
    assert not home.exists()


def test_derived_values_follow_the_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "a" / ".." / "data")
    assert s.home == (tmp_path / "data").resolve()
    assert s.database_url == f"sqlite:///{(tmp_path / 'data').resolve() / 'plinth.db'}"
    assert (tmp_path / "data").resolve() / "imports" in s.import_dirs


def test_home_imports_is_added_to_given_import_dirs_once(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path, import_dirs=[tmp_path / "srv", tmp_path / "imports"])
    assert s.import_dirs == [(tmp_path / "srv").resolve(), tmp_path.resolve() / "imports"]


def test_default_max_tokens_is_capped_by_the_limit() -> None:
    s = load_settings(max_tokens_limit=100)
    assert s.default_max_tokens == 100


def test_none_overrides_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # the CLI passes every option, None when the flag was not given
    monkeypatch.setenv("PLINTH_PORT", "9100")
    assert load_settings(port=None, host=None).port == 9100


# -- environment -------------------------------------------------------------------------------
def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLINTH_PORT", "9123")
    monkeypatch.setenv("PLINTH_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("PLINTH_PRELOAD_DEFAULT_MODEL", "false")
    monkeypatch.setenv("PLINTH_QUEUE_TIMEOUT_S", "2.5")
    monkeypatch.setenv("PLINTH_IMPORT_DIRS", f'["{tmp_path / "srv"}"]')
    monkeypatch.setenv("PLINTH_DATABASE_URL", "postgresql://u@db:5432/plinth")
    s = load_settings()
    assert s.home == (tmp_path / "home").resolve()
    assert s.port == 9123
    assert s.log_level == "debug"
    assert s.preload_default_model is False
    assert s.queue_timeout_s == 2.5
    assert s.import_dirs == [(tmp_path / "srv").resolve(), (tmp_path / "home").resolve() / "imports"]
    assert s.database_url == "postgresql://u@db:5432/plinth"


def test_unrelated_plinth_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_TEST_DATABASE_URL", "postgresql://x@y/z")
    assert load_settings().port == 8000


# -- config files ------------------------------------------------------------------------------
def test_yaml_config_file_via_plinth_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "plinth.yaml"
    cfg.write_text(
        f"home: {tmp_path / 'fromfile'}\nport: 9001\nlog-level: warning\nMax_Tokens_Limit: 64\nimport_dirs:\n  - {tmp_path / 'models'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PLINTH_CONFIG", str(cfg))
    s = load_settings()
    assert s.port == 9001
    assert s.log_level == "warning"
    assert s.max_tokens_limit == 64
    assert s.home == (tmp_path / "fromfile").resolve()
    assert s.database_url == f"sqlite:///{s.home / 'plinth.db'}"
    assert (tmp_path / "models").resolve() in s.import_dirs
    assert s.config == cfg


def test_toml_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "plinth.toml"
    cfg.write_text('port = 9002\nhost = "0.0.0.0"\nthreads = 3\nimport_dirs = ["/srv/models"]\n', encoding="utf-8")
    s = load_settings(config=cfg)
    assert (s.port, s.host, s.threads) == (9002, "0.0.0.0", 3)
    assert Path("/srv/models") in s.import_dirs


def test_empty_config_file_means_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("# nothing yet\n", encoding="utf-8")
    assert load_settings(config=cfg).port == 8000


def test_config_yaml_in_the_home_is_picked_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("port: 9050\nmax_n: 2\n", encoding="utf-8")
    monkeypatch.setenv("PLINTH_HOME", str(home))
    s = load_settings()
    assert (s.port, s.max_n) == (9050, 2)
    # the home given in code finds its own config.yaml too
    monkeypatch.delenv("PLINTH_HOME")
    assert load_settings(home=home).port == 9050
    assert load_settings(home=tmp_path / "elsewhere").port == 8000


def test_config_yaml_in_the_default_home_is_picked_up(clean_env: Path) -> None:
    (clean_env / ".plinth").mkdir()
    (clean_env / ".plinth" / "config.yaml").write_text("port: 9060\n", encoding="utf-8")
    assert load_settings().port == 9060


def test_an_explicit_config_file_replaces_the_home_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("port: 9050\nhost: 10.0.0.1\n", encoding="utf-8")
    other = tmp_path / "other.yaml"
    other.write_text("port: 9070\n", encoding="utf-8")
    s = load_settings(home=tmp_path, config=other)
    assert s.port == 9070
    assert s.host == "127.0.0.1"


def test_precedence_init_over_env_over_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9001\nhost: 10.0.0.1\nlog_level: error\n", encoding="utf-8")
    monkeypatch.setenv("PLINTH_CONFIG", str(cfg))
    monkeypatch.setenv("PLINTH_PORT", "9002")
    monkeypatch.setenv("PLINTH_HOST", "10.0.0.2")
    s = load_settings(port=9003)
    assert s.port == 9003  # code beats env
    assert s.host == "10.0.0.2"  # env beats file
    assert s.log_level == "error"  # file beats defaults
    monkeypatch.delenv("PLINTH_PORT")
    assert load_settings().port == 9001


def test_config_named_in_code_beats_plinth_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_cfg = tmp_path / "env.yaml"
    env_cfg.write_text("port: 9001\n", encoding="utf-8")
    cli_cfg = tmp_path / "cli.toml"
    cli_cfg.write_text("port = 9004\n", encoding="utf-8")
    monkeypatch.setenv("PLINTH_CONFIG", str(env_cfg))
    assert load_settings(config=cli_cfg).port == 9004


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("PLINTH_PORT", "not-a-port", "PLINTH_PORT"),
        ("PLINTH_PORT", "70000", "PLINTH_PORT"),
        ("PLINTH_LOG_LEVEL", "loud", "PLINTH_LOG_LEVEL"),
        ("PLINTH_DATABASE_URL", "mysql://x/y", "PLINTH_DATABASE_URL"),
        ("PLINTH_MAX_TOKENS_LIMIT", "0", "PLINTH_MAX_TOKENS_LIMIT"),
        ("PLINTH_QUEUE_TIMEOUT_S", "-1", "PLINTH_QUEUE_TIMEOUT_S"),
        ("PLINTH_PRELOAD_DEFAULT_MODEL", "perhaps", "PLINTH_PRELOAD_DEFAULT_MODEL"),
        ("PLINTH_IMPORT_DIRS", "/srv/models", "PLINTH_IMPORT_DIRS"),  # lists take JSON
    ],
)
def test_invalid_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str) -> None:
    monkeypatch.setenv(var, value)
    err = invalid()
    assert needle in err.message


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_PORT", "0")
    monkeypatch.setenv("PLINTH_LOG_LEVEL", "loud")
    err = invalid()
    assert "PLINTH_PORT" in err.message and "PLINTH_LOG_LEVEL" in err.message
    assert "'loud'" in err.message  # the bad value is named


def test_invalid_value_given_in_code() -> None:
    assert "PLINTH_MAX_N" in invalid(max_n=0).message


def test_invalid_value_in_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: lots\n", encoding="utf-8")
    assert "PORT" in invalid(config=cfg).message


def test_unknown_keys_in_the_config_file_are_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9001\nprot: 9002\n", encoding="utf-8")
    err = invalid(config=cfg)
    assert "PROT" in err.message.upper()


def test_unknown_keys_in_the_home_config_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("gpu_layers: 99\n", encoding="utf-8")
    assert "GPU_LAYERS" in invalid(home=tmp_path).message.upper()


def test_a_missing_explicit_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    err = invalid(config=missing)
    assert str(missing) in err.message and "does not exist" in err.message
    monkeypatch.setenv("PLINTH_CONFIG", str(missing))
    assert str(missing) in invalid().message


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("bad.yaml", "port: [9001\n", "not valid"),
        ("bad.toml", "port = \n", "not valid"),
        ("list.yaml", "- port\n- 9001\n", "mapping"),
    ],
)
def test_a_malformed_config_file_is_a_clear_error(tmp_path: Path, name: str, text: str, needle: str) -> None:
    cfg = tmp_path / name
    cfg.write_text(text, encoding="utf-8")
    err = invalid(config=cfg)
    assert str(cfg) in err.message
    assert needle in err.message


def test_a_config_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes(b"\xff\xfeport: 9001\n")
    err = invalid(config=cfg)
    assert str(cfg) in err.message and "cannot be read" in err.message


def test_settings_are_a_plain_object_built_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    a = load_settings()
    monkeypatch.setenv("PLINTH_PORT", "9999")
    b = load_settings()
    assert (a.port, b.port) == (8000, 9999)
    assert isinstance(b, Settings)
