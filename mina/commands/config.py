"""``mina config``: the effective configuration, and where each value came from.

Every `mina.settings.Settings` field (the list is the dataclass's, each field names its
variable), gunicorn's variables, and what the logging YAML adds (``mina.caller_info``,
``mina.redaction``). Sources: ``environment``, ``.env (path)`` (the file `mina.envfile`
or the Flask command read; the real environment wins over it), the logging YAML, or
``default``. A DSN's key is masked.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final, NamedTuple

import click
import dotenv
import flask
import yaml

from mina.commands import say_old_data
from mina.envfile import loaded_env_file
from mina.settings import (
    SERVER_DEFAULTS,
    ConfigError,
    Settings,
    bind_address,
    default_log_format,
    mask_dsn,
    variables,
)

__all__ = ["Row", "config", "effective_config"]

_PACKAGED: Final = "logging.yaml"
# Defaults that depend on something else: said, so nobody wonders why.
_DERIVED: Final = {
    "sentry_release": "default (package version)",
    "enable_test_routes": "default (SENTRY_ENVIRONMENT)",
    "instance_path": "default (Flask's instance folder)",
    "database": "default (in MINA_INSTANCE_PATH)",
    "sentry_outbox": "default (in MINA_INSTANCE_PATH)",
    "broker_url": "default (embedded: jobs.sqlite3 in MINA_INSTANCE_PATH)",
}


class Row(NamedTuple):
    """One setting: its name, its value as shown, where the value came from."""

    name: str
    value: str
    source: str


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if name in ("sentry_dsn", "broker_url"):
        return mask_dsn(str(value))
    if name.endswith("_level"):  # log_level, sentry_logs_level: numbers to names
        return str(logging.getLevelName(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset | tuple | list):
        return ",".join(str(v) for v in sorted(value)) if value else "(none)"
    return str(value)


def _env_file() -> dict[str, tuple[str, str | None]]:
    # The .env the mina command read (`mina.envfile`), or, run as the Flask command, the
    # one Flask read itself: variable -> (path, value in the file).
    path = loaded_env_file()
    if path is None and flask.has_app_context():
        found = dotenv.find_dotenv(".env", usecwd=True)
        path = Path(found) if found else None
    if path is None:
        return {}
    return {key: (str(path), value) for key, value in dotenv.dotenv_values(path).items()}


def _source(
    field: str, variable: str, env: Mapping[str, str], files: Mapping[str, tuple[str, Any]]
) -> str:
    if variable in env:
        path, value = files.get(variable, ("", None))
        # A variable already set wins over the file: the file's only if the values agree.
        return f".env ({path})" if path and value == env[variable] else "environment"
    if field == "log_format":
        environment = (env.get("SENTRY_ENVIRONMENT") or "development").strip()
        if default_log_format(environment) == "console":
            return "default (development, on a terminal)"
    return _DERIVED.get(field, "default")


def _yaml_rows(settings: Settings) -> list[Row]:
    if settings.logging_config is not None:
        path: Any = settings.logging_config
        rows = [Row("logging YAML", str(path), "environment (MINA_LOGGING_CONFIG)")]
    else:
        path = resources.files("mina").joinpath(_PACKAGED)
        rows = [Row("logging YAML", str(path), "default (packaged)")]
    try:
        loaded = yaml.safe_load(Path(str(path)).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}".replace("\n", " ")) from None
    own = (loaded.get("mina") if isinstance(loaded, dict) else None) or {}
    redaction = own.get("redaction") or {}
    source = "logging YAML"
    rows.append(Row("mina.caller_info", _shown("", own.get("caller_info", False)), source))
    for key in ("keys", "patterns"):
        values = redaction.get(key) or []
        rows.append(Row(f"mina.redaction.{key}", ",".join(map(str, values)) or "(none)", source))
    return rows


def effective_config(env: Mapping[str, str] | None = None) -> list[Row]:
    """Return every setting with its effective value and source, DSN key masked.

    :raises ConfigError: for an invalid value, as start-up would.
    """
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    files = _env_file()
    rows = [
        Row(
            variable,
            _shown(field, getattr(settings, field)),
            _source(field, variable, env, files),
        )
        for field, variable in variables().items()
    ]
    bind_address(env)  # validated as gunicorn's start-up validates it
    rows += [
        Row(name, env.get(name, default), _source(name, name, env, files))
        for name, default in SERVER_DEFAULTS.items()
    ]
    return rows + _yaml_rows(settings)


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting, per line.")
def config(as_json: bool) -> None:
    """Show the effective configuration: each setting, its value, where it came from.

    Sources are 'environment', '.env (path)' (the nearest .env file, which never
    overrides a variable already set), the logging YAML, or 'default'. The key of
    SENTRY_DSN is masked. Exits 1, with one line naming the variable, when a value is
    invalid.
    """
    try:
        rows = effective_config()
        say_old_data(Settings.from_env())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        for row in rows:
            click.echo(json.dumps(row._asdict()))
        return
    widths = [max(len(row[i]) for row in (Row._fields, *rows)) for i in range(2)]
    for row in (Row("SETTING", "VALUE", "SOURCE"), *rows):
        click.echo(f"{row.name:<{widths[0]}}  {row.value:<{widths[1]}}  {row.source}")
