"""Settings from the environment: defaults, parsing, and one clear line per bad value."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import mina
from mina.settings import (
    ConfigError,
    Settings,
    bind_address,
    default_instance_path,
    mask_dsn,
    old_data_hint,
)

from .support import GUNICORN_APP, ROOT, Server

DSN = "https://0123456789abcdef0123456789abcdef@o1.ingest.example/42"


def test_defaults() -> None:
    settings = Settings.from_env({})
    instance = default_instance_path({})

    assert None is settings.sentry_dsn
    assert "development" == settings.sentry_environment
    assert f"mina@{mina.__version__}" == settings.sentry_release
    assert (0.1, 0.1) == (settings.traces_sample_rate, settings.profiles_sample_rate)
    assert frozenset({401, 403, 404}) == settings.sentry_ignore_status_codes
    assert (logging.INFO, "json") == (settings.log_level, settings.log_format)
    assert settings.enable_test_routes
    assert not settings.send_pii
    assert (instance, instance / "mina.sqlite3") == (settings.instance_path, settings.database)
    assert instance / "sentry-outbox" == settings.sentry_outbox
    assert ("/healthz",) == settings.traces_ignore_paths
    assert ("drop_newest", 4 * 1024 * 1024, 1000, 16 * 1024) == (
        settings.log_when_full,
        settings.log_buffer_bytes,
        settings.log_block_timeout_ms,
        settings.log_max_line_bytes,
    )


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "SENTRY_DSN": DSN,
            "SENTRY_ENVIRONMENT": "production",
            "SENTRY_RELEASE": "mina@9",
            "SENTRY_TRACES_SAMPLE_RATE": "1",
            "SENTRY_PROFILES_SAMPLE_RATE": "0.25",
            "SENTRY_IGNORE_STATUS_CODES": "404, 410",
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "Console",
            "MINA_SEND_PII": "yes",
            "MINA_REDACT_KEYS": "room_code, ,pin",
            "MINA_TRUSTED_PROXIES": "1",
            "MINA_LOG_WHEN_FULL": "Block",
            "MINA_LOG_BUFFER_BYTES": "65536",
            "MINA_LOG_BLOCK_TIMEOUT_MS": "250",
            "MINA_LOG_MAX_LINE_BYTES": "8192",
        }
    )

    assert DSN == settings.sentry_dsn
    assert ("production", "mina@9") == (settings.sentry_environment, settings.sentry_release)
    assert (1.0, 0.25) == (settings.traces_sample_rate, settings.profiles_sample_rate)
    assert frozenset({404, 410}) == settings.sentry_ignore_status_codes
    assert (logging.DEBUG, "console") == (settings.log_level, settings.log_format)
    assert not settings.enable_test_routes  # off outside development unless asked
    assert settings.send_pii
    assert ("room_code", "pin") == settings.redact_keys
    assert 1 == settings.trusted_proxies
    assert ("block", 65536, 250, 8192) == (
        settings.log_when_full,
        settings.log_buffer_bytes,
        settings.log_block_timeout_ms,
        settings.log_max_line_bytes,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SENTRY_TRACES_SAMPLE_RATE", "1.5", "SENTRY_TRACES_SAMPLE_RATE='1.5' is invalid: out of"),
        ("SENTRY_TRACES_SAMPLE_RATE", "-0.1", "SENTRY_TRACES_SAMPLE_RATE='-0.1' is invalid: out"),
        (
            "SENTRY_PROFILES_SAMPLE_RATE",
            "lots",
            "SENTRY_PROFILES_SAMPLE_RATE='lots' is invalid: not",
        ),
        ("SENTRY_PROFILES_SAMPLE_RATE", "nan", "SENTRY_PROFILES_SAMPLE_RATE='nan' is invalid: out"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is invalid: expected DEBUG"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' is invalid: expected one of json, console"),
        ("MINA_SEND_PII", "maybe", "MINA_SEND_PII='maybe' is invalid: expected 1/0"),
        (
            "SENTRY_IGNORE_STATUS_CODES",
            "404,abc",
            "SENTRY_IGNORE_STATUS_CODES='404,abc' is invalid",
        ),
        ("MINA_TRUSTED_PROXIES", "-1", "MINA_TRUSTED_PROXIES='-1' is invalid"),
        ("MINA_LOGGING_CONFIG", "/no/such.yaml", "MINA_LOGGING_CONFIG='/no/such.yaml' is invalid"),
        ("SENTRY_DSN", "not a dsn", "SENTRY_DSN='not a dsn' is invalid"),
        ("SENTRY_SPOTLIGHT", "maybe", "SENTRY_SPOTLIGHT='maybe' is invalid: expected 1/0"),
        (
            "MINA_LOG_WHEN_FULL",
            "drop_oldest",
            "MINA_LOG_WHEN_FULL='drop_oldest' is invalid: expected one of drop_newest, block",
        ),
        ("MINA_LOG_BUFFER_BYTES", "4MiB", "MINA_LOG_BUFFER_BYTES='4MiB' is invalid: expected"),
        ("MINA_LOG_BLOCK_TIMEOUT_MS", "0", "MINA_LOG_BLOCK_TIMEOUT_MS='0' is invalid: expected"),
        ("MINA_LOG_MAX_LINE_BYTES", "100", "MINA_LOG_MAX_LINE_BYTES='100' is invalid: expected"),
        (
            "MINA_DATABASE",
            "/nonexistent/dir/db.sqlite3",
            "MINA_DATABASE='/nonexistent/dir/db.sqlite3' is invalid: the directory"
            " /nonexistent/dir does not exist",
        ),
        (
            "MINA_SENTRY_OUTBOX",
            "/nonexistent/dir/outbox",
            "MINA_SENTRY_OUTBOX='/nonexistent/dir/outbox' is invalid: the directory"
            " /nonexistent/dir does not exist",
        ),
        (
            "MINA_INSTANCE_PATH",
            "/nonexistent/dir/instance",
            "MINA_INSTANCE_PATH='/nonexistent/dir/instance' is invalid: the directory"
            " /nonexistent/dir does not exist",
        ),
        (
            "SENTRY_TRACES_IGNORE_PATHS",
            "/healthz,healthz",
            "SENTRY_TRACES_IGNORE_PATHS='/healthz,healthz' is invalid: 'healthz' is not a URL",
        ),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})

    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert variable == info.value.variable


def test_malformed_dsn_message_masks_the_key() -> None:
    key = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SENTRY_DSN": f"https://{key}@example/not-a-project"})

    assert key not in str(info.value)
    assert "https://***@example/not-a-project" in str(info.value)


def test_the_broker_url_is_checked_once_with_its_password_masked() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"MINA_BROKER_URL": "redis://:hunter2@cache:6379/jobs"})

    assert (
        "MINA_BROKER_URL='redis://***@cache:6379/jobs' is invalid:"
        " the database (the path) is not a number"
    ) == str(info.value)
    assert (None, None) == (
        Settings.from_env({}).broker_url,
        Settings.from_env({"MINA_BROKER_URL": "  "}).broker_url,
    )
    settings = Settings.from_env({"MINA_BROKER_URL": " redis://cache:6379/1 "})
    assert ("redis://cache:6379/1", settings.instance_path / "jobs.sqlite3") == (
        settings.broker_url,
        settings.queue_file,
    )


def test_mask_dsn() -> None:
    assert "https://***@o1.ingest.example/42" == mask_dsn(DSN)
    assert "no-key-here" == mask_dsn("no-key-here")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOG_LEVEL", "LOUD"),
        ("SENTRY_TRACES_SAMPLE_RATE", "2"),
        ("MINA_WORKERS", "zero"),
        ("MINA_LOG_WHEN_FULL", "wait"),
        ("MINA_DATABASE", "/nonexistent/dir/db.sqlite3"),
        ("MINA_BIND", "garbage"),
        ("MINA_BIND", "127.0.0.1"),
        ("MINA_BIND", "127.0.0.1:99999"),
    ],
)
def test_bad_value_stops_gunicorn_with_one_line(variable: str, value: str) -> None:
    result = subprocess.run(
        GUNICORN_APP,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MINA_BIND": "127.0.0.1:0", variable: value},
        cwd=ROOT,
    )

    assert 2 == result.returncode
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mina: configuration error: {variable}={value!r} is invalid: ")
    assert "" == result.stdout


def test_create_app_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^LOG_FORMAT="):
        mina.create_app({"LOG_FORMAT": "yaml"})


def test_dsn_without_a_scheme_is_masked_too() -> None:
    key = "0123456789abcdef0123456789abcdef"
    assert "***@o1.ingest.sentry.io/1" == mask_dsn(f"{key}@o1.ingest.sentry.io/1")
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SENTRY_DSN": f"{key}@o1.ingest.sentry.io/1"})
    assert key not in str(info.value)


@pytest.mark.parametrize("value", ["²", "1.5", "-1", " "])
def test_whole_numbers_refuse_what_int_refuses(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^MINA_TRUSTED_PROXIES="):
        Settings.from_env({"MINA_TRUSTED_PROXIES": value})


def test_bad_logging_config_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nhandlers: {x: {class: no.such.Handler}}\nroot: {handlers: [x]}\n")
    result = subprocess.run(
        GUNICORN_APP,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MINA_LOGGING_CONFIG": str(path), "MINA_BIND": "127.0.0.1:0"},
        cwd=ROOT,
    )

    assert 2 == result.returncode
    [line] = result.stderr.splitlines()
    assert line.startswith("mina: configuration error: MINA_LOGGING_CONFIG=")


def test_spotlight_only_in_development() -> None:
    assert Settings.from_env({"SENTRY_SPOTLIGHT": "1"}).sentry_spotlight is True
    assert "http://localhost:8969/stream" == (
        Settings.from_env({"SENTRY_SPOTLIGHT": "http://localhost:8969/stream"}).sentry_spotlight
    )
    with pytest.raises(ConfigError, match=r"^SENTRY_SPOTLIGHT='1' is invalid: Spotlight sends"):
        Settings.from_env({"SENTRY_SPOTLIGHT": "1", "SENTRY_ENVIRONMENT": "production"})


def test_the_default_instance_folder_follows_flask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flask

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINA_INSTANCE_PATH")
    monkeypatch.delenv("MINA_DATABASE")
    monkeypatch.delenv("MINA_SENTRY_OUTBOX")
    # Flask's own answer for the package, whatever the working directory.
    expected = Path(flask.Flask("mina").instance_path)
    settings = Settings.from_env()

    assert (expected, expected) == (default_instance_path(), settings.instance_path)
    assert expected / "mina.sqlite3" == settings.database
    assert expected / "sentry-outbox" == settings.sentry_outbox
    assert not expected.is_relative_to(tmp_path)


def test_relative_paths_are_made_absolute_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"MINA_DATABASE": "db.sqlite3", "MINA_SENTRY_OUTBOX": "box"})

    assert (tmp_path / "db.sqlite3", tmp_path / "box") == (
        settings.database,
        settings.sentry_outbox,
    )


def test_old_var_data_gets_a_hint_naming_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "mina.sqlite3").write_bytes(b"")
    instance = tmp_path / "instance"
    env = {"MINA_INSTANCE_PATH": str(instance)}
    settings = Settings.from_env(env)

    assert (
        f"{tmp_path}/var/mina.sqlite3 hold(s) data of an older Mina, which now keeps its data"
        f" in {instance}: move it there (mkdir -p {instance} && mv {tmp_path}/var/mina.sqlite3"
        f" {instance}/) or keep using it (MINA_INSTANCE_PATH={tmp_path}/var)"
    ) == old_data_hint(settings, env)
    chosen = {**env, "MINA_DATABASE": str(tmp_path / "var" / "mina.sqlite3")}
    assert None is old_data_hint(Settings.from_env(chosen), chosen)


@pytest.mark.parametrize(
    "value", ["127.0.0.1:5000", "0.0.0.0:80", "localhost:8000", "[::1]:5000", "127.0.0.1:0"]
)
def test_bind_addresses_gunicorn_takes(value: str) -> None:
    assert value == bind_address({"MINA_BIND": value})


def test_a_unix_socket_needs_its_directory(tmp_path: Path) -> None:
    assert f"unix:{tmp_path}/mina.sock" == bind_address({"MINA_BIND": f"unix:{tmp_path}/mina.sock"})
    with pytest.raises(ConfigError, match=r"^MINA_BIND='unix:/nonexistent/m.sock' is invalid: the"):
        bind_address({"MINA_BIND": "unix:/nonexistent/m.sock"})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("garbage", "expected HOST:PORT, [IPV6]:PORT, unix:/path or fd://N"),
        ("127.0.0.1", "expected HOST:PORT, [IPV6]:PORT, unix:/path or fd://N"),
        ("::1:5000", "expected HOST:PORT, [IPV6]:PORT, unix:/path or fd://N"),
        ("127.0.0.1:99999", "the port must be 0 to 65535 (0: any free port)"),
        ("127.0.0.1:http", "expected HOST:PORT, [IPV6]:PORT, unix:/path or fd://N"),
    ],
)
def test_bad_bind_addresses_name_mina_bind(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        bind_address({"MINA_BIND": value})
    assert str(info.value).startswith(f"MINA_BIND={value!r} is invalid: {reason}")


def test_a_second_server_on_a_taken_address_says_so_in_one_line(
    gunicorn: Callable[..., Server],
) -> None:
    first = gunicorn(workers=1, threads=1)
    script = Path(sys.executable).with_name("mina")  # `make run` is `mina serve`

    result = subprocess.run(
        [str(script), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MINA_BIND": f"127.0.0.1:{first.port}"},
        cwd=ROOT,
    )

    assert 1 == result.returncode
    assert [
        f"mina: cannot listen on 127.0.0.1:{first.port}: the address is already in use (another"
        f" server?); choose another one: MINA_BIND=127.0.0.1:{first.port + 1} make run"
    ] == result.stderr.splitlines()
    assert "Traceback" not in result.stdout
