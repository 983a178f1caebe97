"""mina.cli: the group, ``--version``, ``python -m mina``, ``users create``, the Flask commands."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import flask
import pytest
from click.testing import CliRunner
from flask.cli import FlaskGroup

from mina import auth, cli, db
from mina.app import create_app
from mina.settings import package_version


def authenticates(database: Path, token: str) -> str | None:
    """The username *token* authenticates as, through a real request, or None."""
    app = flask.Flask(__name__)
    app.config.update(TESTING=True, MINA_DATABASE=str(database))
    db.init_app(app)
    auth.init_app(app)

    @app.get("/whoami")
    @auth.login_required
    def whoami() -> str:
        return auth.current_user().username

    response = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"})
    return response.get_data(as_text=True) if response.status_code == 200 else None


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MINA_DATABASE, pointing at a file that does not exist yet (in a directory that does:
    Mina creates no directory outside its instance folder)."""
    path = tmp_path / "mina.sqlite3"
    monkeypatch.setenv("MINA_DATABASE", str(path))
    return path


def test_create_prints_only_a_working_token(database: Path) -> None:
    result = CliRunner().invoke(cli.main, ["users", "create", "ada", "--email", "a@example.org"])
    assert 0 == result.exit_code, result.output
    token = result.stdout.strip()
    assert [token] == result.stdout.splitlines()
    assert token.startswith(db.TOKEN_PREFIX)
    assert token not in result.stderr
    assert "shown only once" in result.stderr
    assert "ada" == authenticates(database, token)
    with closing(db.connect(database)) as conn:
        user = db.user_for_token(conn, token)
    assert user is not None
    assert "a@example.org" == user.email


def test_a_taken_username_is_a_one_line_error(database: Path) -> None:
    CliRunner().invoke(cli.main, ["users", "create", "ada"])
    result = CliRunner().invoke(cli.main, ["users", "create", "ada"])
    assert (1, "") == (result.exit_code, result.stdout)
    assert "Error: a user named 'ada' already exists\n" == result.stderr


@pytest.mark.parametrize("name", ["", "two words", "tab\tbed", "x" * 65])
def test_bad_usernames_are_usage_errors(database: Path, name: str) -> None:
    result = CliRunner().invoke(cli.main, ["users", "create", name])
    assert 2 == result.exit_code
    assert "Invalid value for 'USERNAME'" in result.stderr
    assert not database.exists()


def test_a_config_error_is_a_one_line_error(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    result = CliRunner().invoke(cli.main, ["users", "create", "ada"])
    assert 1 == result.exit_code
    assert [
        "Error: LOG_LEVEL='LOUD' is invalid: expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
    ] == result.stderr.splitlines()


def test_as_a_flask_command_it_uses_the_apps_database(database: Path, tmp_path: Path) -> None:
    app = flask.Flask(__name__)
    app.config["MINA_DATABASE"] = str(tmp_path / "app.sqlite3")
    app.cli.add_command(cli.users)
    flask_command = FlaskGroup(create_app=lambda: app, load_dotenv=False)
    result = CliRunner().invoke(flask_command, ["users", "create", "ada"])
    assert 0 == result.exit_code, result.output
    assert "ada" == authenticates(tmp_path / "app.sqlite3", result.stdout.strip())
    assert not database.exists()


def test_the_console_script(database: Path) -> None:
    script = Path(sys.executable).with_name("mina")
    result = subprocess.run(
        [str(script), "users", "create", "ada"],
        capture_output=True,
        text=True,
        env={**os.environ, "MINA_DATABASE": str(database)},
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    assert "ada" == authenticates(database, result.stdout.strip())


def test_version_and_help_list_every_command() -> None:
    result = CliRunner().invoke(cli.main, ["--version"])
    assert (0, f"mina, version {package_version()}\n") == (result.exit_code, result.stdout)
    result = CliRunner().invoke(cli.main, ["--help"])
    listed = [line.split()[0] for line in result.stdout.split("Commands:\n")[1].splitlines()]
    assert [
        "config",
        "jobs",
        "logs",
        "outbox",
        "sentry-check",
        "serve",
        "users",
        "worker",
    ] == listed


def test_python_dash_m_mina_is_mina() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mina", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (0, f"mina, version {package_version()}\n", "") == (
        result.returncode,
        result.stdout,
        result.stderr,
    )


def test_the_apps_flask_commands(database: Path) -> None:
    app = create_app({"TESTING": True})
    flask_command = FlaskGroup(create_app=lambda: app, load_dotenv=False)
    for name in ("users", "config", "sentry-check", "logs"):
        result = CliRunner().invoke(flask_command, [name, "--help"])
        assert 0 == result.exit_code, (name, result.output)
    result = CliRunner().invoke(flask_command, ["users", "list"])
    assert (0, "", "No users yet; create one with: mina users create NAME\n") == (
        result.exit_code,
        result.stdout,
        result.stderr,
    )
