"""The outbox's and storm guard's settings: defaults, the off switch, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mina.settings import ConfigError, Settings, default_instance_path


def test_defaults() -> None:
    settings = Settings.from_env({})

    assert (
        default_instance_path({}) / "sentry-outbox",
        10_000,
        64 * 1024 * 1024,
        5.0,
        60.0,
        20,
        60.0,
    ) == (
        settings.sentry_outbox,
        settings.outbox_max_events,
        settings.outbox_max_bytes,
        settings.sentry_timeout,
        settings.sentry_retry_max,
        settings.storm_budget,
        settings.storm_window,
    )


@pytest.mark.parametrize("value", ["off", "OFF", " off "])
def test_off_disables_the_outbox(value: str) -> None:
    assert Settings.from_env({"MINA_SENTRY_OUTBOX": value}).sentry_outbox is None


def test_a_directory(tmp_path: Path) -> None:
    env = {"MINA_SENTRY_OUTBOX": str(tmp_path / "box"), "MINA_SENTRY_STORM_BUDGET": "0"}
    settings = Settings.from_env(env)

    assert (tmp_path / "box", 0) == (settings.sentry_outbox, settings.storm_budget)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MINA_SENTRY_OUTBOX_MAX_EVENTS", "0", "expected a whole number, 1 or more"),
        ("MINA_SENTRY_OUTBOX_MAX_EVENTS", "many", "expected a whole number, 1 or more"),
        ("MINA_SENTRY_OUTBOX_MAX_BYTES", "1000", "expected a whole number, 65536 or more"),
        ("MINA_SENTRY_STORM_BUDGET", "-1", "expected a whole number, 0 or more"),
        ("MINA_SENTRY_STORM_WINDOW", "0", "out of range; expected seconds above 0"),
        ("MINA_SENTRY_TIMEOUT", "soon", "not a number; expected seconds above 0"),
        ("MINA_SENTRY_RETRY_MAX", "inf", "out of range; expected seconds above 0"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})

    assert f"{name}={value!r} is invalid: {message}" == str(caught.value)


def test_an_outbox_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")

    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"MINA_SENTRY_OUTBOX": str(path)})

    expected = f"MINA_SENTRY_OUTBOX={str(path)!r} is invalid: not a directory; expected a"
    assert str(caught.value).startswith(expected)
