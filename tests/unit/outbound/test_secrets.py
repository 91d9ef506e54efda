"""Named secrets: defined in the settings, looked up by name, bound to hosts, masked in every
dump, taken out of log lines; the settings that used to name environment variables are gone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from plinth.config import load_settings
from plinth.errors import PlinthError
from plinth.outbound import RedactSecrets, Secret, SecretStore

VALUE = "sk-live-0123456789abcdef"


def test_secrets_come_from_the_settings_and_never_show_in_a_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_SECRETS", json.dumps({"openai-prod": VALUE, "tei": {"value": "tei-key", "hosts": ["TEI.internal."]}}))
    s = load_settings(home=tmp_path)
    store = SecretStore.from_settings(s)
    assert store.names() == ["openai-prod", "tei"]
    assert store.get("openai-prod").value == VALUE and store.get("tei").hosts == ("tei.internal",)
    for text in (repr(s), str(s), json.dumps(s.model_dump(mode="json")), repr(s.secrets)):
        assert VALUE not in text and "tei-key" not in text
    assert s.plain_secrets()["openai-prod"] == {"value": VALUE, "hosts": []}  # only for a job's own process


def test_the_config_file_defines_secrets_too(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(f"secrets:\n  openai-prod: {VALUE}\n")
    assert SecretStore.from_settings(load_settings(home=tmp_path)).get("openai-prod").value == VALUE


@pytest.mark.parametrize(
    ("secrets", "words"),
    [
        ({"bad name": "x"}, "secret name 'bad name'"),
        ({"ok": ""}, "must not be empty"),
        ({"ok": {"value": "x", "hosts": ["http://x/"]}}, "hosts are host names"),
    ],
)
def test_bad_secrets_are_refused_without_showing_values(tmp_path: Path, secrets: dict[str, object], words: str) -> None:
    with pytest.raises(PlinthError) as e:
        load_settings(home=tmp_path, secrets=secrets)
    assert words in e.value.message


def test_an_unknown_secret_is_400_naming_it() -> None:
    store = SecretStore([Secret("openai-prod", VALUE)])
    with pytest.raises(PlinthError) as e:
        store.get("AWS_SECRET_ACCESS_KEY", param="api_key_secret")
    assert e.value.http_status == 400 and "unknown secret 'AWS_SECRET_ACCESS_KEY'" in e.value.message
    assert e.value.param == "api_key_secret" and VALUE not in e.value.message


def test_a_secret_bound_to_hosts_goes_to_those_only() -> None:
    store = SecretStore([Secret("openai", VALUE, ("api.openai.com", "*.openai.azure.com"))])
    assert store.get("openai", host="api.openai.com").value == VALUE
    assert store.get("openai", host="API.OpenAI.com.").value == VALUE
    assert store.get("openai", host="acme.openai.azure.com").value == VALUE
    with pytest.raises(PlinthError) as e:
        store.get("openai", host="attacker.example")
    assert "may only be sent to api.openai.com" in e.value.message and VALUE not in e.value.message


def test_secret_values_are_taken_out_of_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    store = SecretStore([Secret("k", VALUE)])
    assert store.redact(f"Authorization: Bearer {VALUE}") == "Authorization: Bearer [secret]"
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets(store))
    record = logging.LogRecord("plinth", logging.WARNING, __file__, 1, "engine said %r", (f"bad key {VALUE}",), None)
    handler.filter(record)
    assert VALUE not in record.getMessage() and "[secret]" in record.getMessage()
    try:
        raise ValueError(f"header was {VALUE}")
    except ValueError:
        import sys

        record = logging.LogRecord("plinth", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    handler.filter(record)
    assert VALUE not in logging.Formatter().format(record)


def test_settings_that_named_environment_variables_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PlinthError, match=r"embedding_api_key_env .* was removed"):
        load_settings(home=tmp_path, embedding_api_key_env="OPENAI_API_KEY")
    monkeypatch.setenv("PLINTH_EMBEDDING_API_KEY_ENV", "OPENAI_API_KEY")
    with pytest.raises(PlinthError, match="PLINTH_EMBEDDING_API_KEY_SECRET"):
        load_settings(home=tmp_path)


def test_trusted_proxies_and_the_allow_list_are_validated(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path, trusted_proxies=["10.0.0.5", "10.1.0.0/16"], outbound_allow=["[::1]", "vllm.internal", "*.svc"])
    assert s.trusted_proxies == ["10.0.0.5/32", "10.1.0.0/16"] and s.outbound_allow == ["::1/128", "vllm.internal", "*.svc"]
    with pytest.raises(PlinthError, match="trusted_proxies holds IP addresses or CIDRs"):
        load_settings(home=tmp_path, trusted_proxies=["proxy.example"])
    with pytest.raises(PlinthError, match="outbound_allow holds"):
        load_settings(home=tmp_path, outbound_allow=["http://x/"])
