"""``mina config``: every setting, its value and where it came from; secrets masked."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import FlaskGroup

from mina import cli, envfile
from mina.app import create_app
from mina.settings import Settings, package_version, variables


def test_every_setting_with_value_and_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    yaml_file = tmp_path / "logging.yaml"
    yaml_file.write_text(
        "version: 1\nmina:\n  caller_info: true\n  redaction:\n    keys: [pin]\n"
        "    patterns: ['ACME-\\d+']\n"
    )
    monkeypatch.setenv("SENTRY_DSN", "https://0123456789abcdef@o1.ingest.example/42")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("MINA_REDACT_KEYS", "iban, pin")
    monkeypatch.setenv("MINA_LOGGING_CONFIG", str(yaml_file))
    monkeypatch.setenv("MINA_WORKERS", "8")
    monkeypatch.setenv("MINA_BROKER_URL", "redis://:hunter2@127.0.0.1:6379/0")
    database = Settings.from_env().database

    result = CliRunner().invoke(cli.main, ["config", "--json"])

    assert (0, "") == (result.exit_code, result.stderr)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [
        ["SENTRY_DSN", "https://***@o1.ingest.example/42", "environment"],
        ["SENTRY_ENVIRONMENT", "development", "default"],
        ["SENTRY_RELEASE", f"mina@{package_version()}", "default (package version)"],
        ["SENTRY_TRACES_SAMPLE_RATE", "0.1", "default"],
        ["SENTRY_PROFILES_SAMPLE_RATE", "0.1", "default"],
        ["SENTRY_TRACES_IGNORE_PATHS", "/healthz", "default"],
        ["SENTRY_IGNORE_STATUS_CODES", "401,403,404", "default"],
        ["SENTRY_ENABLE_LOGS", "false", "default"],
        ["SENTRY_LOGS_LEVEL", "INFO", "default"],
        ["SENTRY_SPOTLIGHT", "false", "default"],
        ["SENTRY_DEBUG", "false", "default"],
        ["LOG_LEVEL", "DEBUG", "environment"],
        ["LOG_FORMAT", "json", "default"],
        ["MINA_LOGGING_CONFIG", str(yaml_file), "environment"],
        ["MINA_ENABLE_TEST_ROUTES", "true", "default (SENTRY_ENVIRONMENT)"],
        ["MINA_SEND_PII", "false", "default"],
        ["MINA_REDACT_KEYS", "iban,pin", "environment"],
        ["MINA_TRUSTED_PROXIES", "0", "default"],
        ["MINA_INSTANCE_PATH", str(tmp_path / "instance"), "environment"],
        ["MINA_DATABASE", str(database), "environment"],
        ["MINA_BROKER_URL", "redis://***@127.0.0.1:6379/0", "environment"],
        ["MINA_MAX_JSON_BYTES", "1048576", "default"],
        ["MINA_LOG_WHEN_FULL", "drop_newest", "default"],
        ["MINA_LOG_BUFFER_BYTES", "4194304", "default"],
        ["MINA_LOG_BLOCK_TIMEOUT_MS", "1000", "default"],
        ["MINA_LOG_MAX_LINE_BYTES", "16384", "default"],
        ["MINA_LOG_FAST_PATH", "true", "default"],
        ["MINA_LOG_BATCH", "true", "default"],
        ["MINA_SENTRY_OUTBOX", str(tmp_path / "sentry-outbox"), "environment"],
        ["MINA_SENTRY_OUTBOX_MAX_EVENTS", "10000", "default"],
        ["MINA_SENTRY_OUTBOX_MAX_BYTES", "67108864", "default"],
        ["MINA_SENTRY_TIMEOUT", "5.0", "default"],
        ["MINA_SENTRY_RETRY_MAX", "60.0", "default"],
        ["MINA_SENTRY_STORM_BUDGET", "20", "default"],
        ["MINA_SENTRY_STORM_WINDOW", "60.0", "default"],
        ["MINA_BIND", "127.0.0.1:5000", "default"],
        ["MINA_WORKERS", "8", "environment"],
        ["MINA_THREADS", "4", "default"],
        ["logging YAML", str(yaml_file), "environment (MINA_LOGGING_CONFIG)"],
        ["mina.caller_info", "true", "logging YAML"],
        ["mina.redaction.keys", "pin", "logging YAML"],
        ["mina.redaction.patterns", "ACME-\\d+", "logging YAML"],
    ] == [[row["name"], row["value"], row["source"]] for row in rows]
    assert "0123456789abcdef" not in result.output
    assert "hunter2" not in result.output


def test_the_table_lines_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MINA_DATABASE")
    monkeypatch.delenv("MINA_SENTRY_OUTBOX")
    result = CliRunner().invoke(cli.main, ["config"])
    lines = result.stdout.splitlines()
    packaged = str(resources.files("mina").joinpath("logging.yaml"))
    outbox = str(tmp_path / "instance" / "sentry-outbox")
    width = max(len(packaged), len(outbox))
    by_name = {line.split()[0]: line for line in lines[1:]}
    # The longest name sets the first column: MINA_SENTRY_OUTBOX_MAX_EVENTS.
    assert f"{'SETTING':<29}  {'VALUE':<{width}}  SOURCE" == lines[0]
    assert f"{'SENTRY_DSN':<29}  {'(unset)':<{width}}  default" == lines[1]
    database = str(tmp_path / "instance" / "mina.sqlite3")
    assert (
        f"{'MINA_DATABASE':<29}  {database:<{width}}  default (in MINA_INSTANCE_PATH)"
        == by_name["MINA_DATABASE"]
    )
    assert f"{'logging YAML':<29}  {packaged:<{width}}  default (packaged)" == by_name["logging"]


def test_every_settings_field_names_its_variable() -> None:
    assert [f.name for f in dataclasses.fields(Settings)] == list(variables())
    assert all(name.isupper() for name in variables().values())


def test_a_bad_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "1.5")
    result = CliRunner().invoke(cli.main, ["config"])
    assert (
        1,
        "",
        "Error: SENTRY_TRACES_SAMPLE_RATE='1.5' is invalid: out of range; expected 0.0 to 1.0\n",
    ) == (result.exit_code, result.stdout, result.stderr)


def test_as_a_flask_command_it_names_the_env_file_flask_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=warning\nMINA_TRUSTED_PROXIES=1\n")
    monkeypatch.chdir(tmp_path)
    for name in ("LOG_LEVEL", "MINA_TRUSTED_PROXIES"):
        monkeypatch.setenv(name, "")  # so what Flask loads is removed after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("MINA_TRUSTED_PROXIES", "2")  # the environment wins over the file
    flask_command = FlaskGroup(create_app=lambda: create_app({"TESTING": True}))

    result = CliRunner().invoke(flask_command, ["config", "--json"])

    assert 0 == result.exit_code, result.output
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert {"name": "LOG_LEVEL", "value": "WARNING", "source": f".env ({env_file})"} == (
        rows["LOG_LEVEL"]
    )
    assert {"name": "MINA_TRUSTED_PROXIES", "value": "2", "source": "environment"} == (
        rows["MINA_TRUSTED_PROXIES"]
    )


def test_the_mina_command_names_the_env_file_it_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SENTRY_ENVIRONMENT=staging\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(envfile, "_done", False)
    monkeypatch.setattr(envfile, "_path", None)
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "")  # so what the file sets is removed after
    monkeypatch.delenv("SENTRY_ENVIRONMENT")

    result = CliRunner().invoke(cli.main, ["config", "--json"])

    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert {"name": "SENTRY_ENVIRONMENT", "value": "staging", "source": f".env ({env_file})"} == (
        rows["SENTRY_ENVIRONMENT"]
    )
    assert "default (SENTRY_ENVIRONMENT)" == rows["MINA_ENABLE_TEST_ROUTES"]["source"]
