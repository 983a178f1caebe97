"""Starting Mina as documented: the Quick Start command, ``.env``, a bad ``MINA_DATABASE``.

Real processes: gunicorn started with the documented command lines (bound to 127.0.0.1 and
a free port), and the installed ``mina`` command, each with a time limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mina import db, envfile
from mina.settings import ConfigError

from .support import ROOT, free_port

BIN = Path(sys.executable).parent
# The documented commands: the Quick Start's, and `make run`'s.
QUICK_START = [str(BIN / "gunicorn"), "--bind", "{bind}", "--reload", "main:app"]
MAKE_RUN = [str(BIN / "gunicorn"), "--config", "python:mina.gunicorn_conf", "mina:create_app()"]


def _env(**extra: str) -> dict[str, str]:
    # The test's environment: SENTRY_*/LOG_*/MINA_* were removed by conftest, which then
    # set a MINA_DATABASE of its own; these tests name theirs, or read it from a .env.
    env = {k: v for k, v in os.environ.items() if k != "MINA_DATABASE"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class Started:
    """A gunicorn started with *argv* in *cwd*; `stop` returns its output."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Poll *url* until it answers; fail with stderr if the server dies or is too slow."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Waits for a worker still booting rather than asking twice.
                wait = max(deadline - time.monotonic(), 0.1)
                with urllib.request.urlopen(url, timeout=wait) as response:
                    assert 200 == response.status
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    _, err = self.stop()
                    raise AssertionError(f"gunicorn did not serve {url}: {err[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> tuple[str, str]:
        """Terminate (if running) and return stdout and stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate(timeout=5)


@pytest.fixture
def started() -> Iterator[list[Started]]:
    """Processes a test starts, killed at teardown if still running."""
    processes: list[Started] = []
    yield processes
    for item in processes:
        if item.process.poll() is None:
            item.process.kill()
            item.process.communicate(timeout=5)


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    lines = stdout.splitlines()
    assert lines
    parsed = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all(isinstance(line, dict) for line in parsed)
    return parsed


# --- the Quick Start ------------------------------------------------------------------------


def test_the_quick_start_command_serves_json_lines_and_its_bind_wins(
    started: list[Started], tmp_path: Path
) -> None:
    port, other = free_port(), free_port()
    argv = [arg.format(bind=f"127.0.0.1:{port}") for arg in QUICK_START]
    env = _env(MINA_DATABASE=str(tmp_path / "qs.sqlite3"), MINA_BIND=f"127.0.0.1:{other}")
    server = Started(argv, ROOT, env)
    started.append(server)

    server.wait_http(f"http://127.0.0.1:{port}/healthz")
    stdout, stderr = server.stop()

    lines = _json_lines(stdout)
    events = [line["event"] for line in lines]
    assert f"Listening at: http://127.0.0.1:{port} ({server.process.pid})" in events
    # Mina's gunicorn settings (its worker), not gunicorn's defaults (sync).
    assert "Using worker: mina.gunicorn_worker.ThreadWorker" in events
    assert ["/healthz"] == [line["path"] for line in lines if line["event"] == "request.finished"]
    assert "" == stderr


def test_main_and_gunicorn_conf_stay_out_of_the_package() -> None:
    import tomllib

    import setuptools

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools.find_packages(str(ROOT), **config["packages"]["find"])
    assert {"mina"} == {package.split(".")[0] for package in packages}
    assert "py-modules" not in config  # main.py and gunicorn.conf.py are not installed
    assert (ROOT / "main.py").is_file() and (ROOT / "gunicorn.conf.py").is_file()


# --- .env -------------------------------------------------------------------------------------


def test_gunicorn_reads_dotenv_from_its_working_directory_and_the_environment_wins(
    started: list[Started], tmp_path: Path
) -> None:
    port = free_port()
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"# local settings\nMINA_BIND=127.0.0.1:{port}\n"
        f"MINA_DATABASE={tmp_path / 'from-file.sqlite3'}\n"
    )
    real = tmp_path / "from-environment.sqlite3"
    server = Started(MAKE_RUN, tmp_path, _env(MINA_DATABASE=str(real)))
    started.append(server)

    server.wait_http(f"http://127.0.0.1:{port}/healthz")  # MINA_BIND came from the file
    stdout, _ = server.stop()

    loaded = [line for line in _json_lines(stdout) if line["event"] == "config.loaded"]
    assert [{"env_file": str(dotenv), "database": str(real)}] * 2 == [
        {k: line[k] for k in ("env_file", "database")} for line in loaded
    ]  # one line per worker
    assert real.is_file()
    assert not (tmp_path / "from-file.sqlite3").exists()


def test_the_mina_command_reads_dotenv(tmp_path: Path) -> None:
    database = tmp_path / "cli.sqlite3"
    (tmp_path / ".env").write_text(f'MINA_DATABASE="{database}"\n')

    result = subprocess.run(
        [str(BIN / "mina"), "users", "create", "ada"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 0 == result.returncode, result.stderr
    assert result.stdout.startswith(db.TOKEN_PREFIX)
    assert f"in {database}." in result.stderr


def test_without_dotenv_the_start_up_line_says_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(envfile, "_done", False)
    monkeypatch.setattr(envfile, "_path", None)
    assert None is envfile.load_env_file()
    assert None is envfile.loaded_env_file()


def test_dotenv_is_read_once_and_never_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("MINA_A=file\nMINA_B=file\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found in a parent, as flask finds it
    monkeypatch.setattr(envfile, "_done", False)
    monkeypatch.setattr(envfile, "_path", None)
    monkeypatch.setenv("MINA_A", "environment")
    monkeypatch.delenv("MINA_B", raising=False)  # restored (removed) after the test

    assert tmp_path / ".env" == envfile.load_env_file()
    assert ("environment", "file") == (os.environ["MINA_A"], os.environ["MINA_B"])
    (tmp_path / ".env").write_text("MINA_B=changed\n")
    monkeypatch.delenv("MINA_B")
    assert tmp_path / ".env" == envfile.load_env_file()
    assert "MINA_B" not in os.environ  # not read again


# --- a bad MINA_DATABASE ------------------------------------------------------------------


BAD_DATABASES = ["parent is a file", "a directory", "not a database"]


def _bad_database(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """A MINA_DATABASE Mina cannot use, and the reason the one line gives."""
    if kind == "parent is a file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "mina.sqlite3", f"{tmp_path / 'file'} is not a directory"
    if kind == "a directory":
        return tmp_path, "not a usable SQLite database: unable to open database file"
    (tmp_path / "notes.txt").write_text("not a database, " * 100)
    return tmp_path / "notes.txt", "not a usable SQLite database: file is not a database"


@pytest.fixture(params=BAD_DATABASES)
def bad_database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """Each kind of unusable MINA_DATABASE (in-process: cheap)."""
    return _bad_database(request.param, tmp_path)


def test_initialize_names_the_variable(bad_database: tuple[Path, str]) -> None:
    path, reason = bad_database
    with pytest.raises(ConfigError) as caught:
        db.initialize(path)
    assert f"MINA_DATABASE={str(path)!r} is invalid: {reason}" == str(caught.value)


# Each process costs seconds: one kind each (every kind takes the same path, tested above).
@pytest.mark.parametrize(
    ("command", "kind"), [("make run", "parent is a file"), ("quick start", "not a database")]
)
def test_gunicorn_stops_with_one_line_naming_mina_database(
    command: str, kind: str, tmp_path: Path
) -> None:
    path, reason = _bad_database(kind, tmp_path)
    argv = MAKE_RUN if command == "make run" else QUICK_START
    argv = [arg.format(bind=f"127.0.0.1:{free_port()}") for arg in argv]

    result = subprocess.run(
        argv,
        cwd=ROOT,
        env=_env(MINA_DATABASE=str(path), MINA_BIND=f"127.0.0.1:{free_port()}"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 0 != result.returncode
    assert [
        f"mina: configuration error: MINA_DATABASE={str(path)!r} is invalid: {reason}"
    ] == result.stderr.splitlines()


def test_mina_users_create_stops_with_one_line_naming_mina_database(tmp_path: Path) -> None:
    path, reason = _bad_database("a directory", tmp_path)

    result = subprocess.run(
        [str(BIN / "mina"), "users", "create", "ada"],
        cwd=ROOT,
        env=_env(MINA_DATABASE=str(path)),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 0 != result.returncode
    assert "" == result.stdout
    assert [f"Error: MINA_DATABASE={str(path)!r} is invalid: {reason}"] == (
        result.stderr.splitlines()
    )
