"""Shipping logs: syslog-ng's json-parser reads what two gunicorn workers wrote, end to end.

The configuration under test is the shipped example, `examples/syslog-ng/mina.conf`, with
only its three paths defined for this test. Real gunicorn (2 workers x 4 threads) appends
its stdout to a file under a bounded load; syslog-ng runs in the foreground with its own
persist file, pid file and control socket, follows that file, parses each line with
``json-parser()`` and writes the records with ``user_id``, ``status`` and ``duration_ms``
as numbers. Every line written must arrive parsed, once, whole, with the same values.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mina import db

from .support import GUNICORN_APP, ROOT, free_port, missing_tool_reason, system_tool, wait_http

EXAMPLE = ROOT / "examples" / "syslog-ng" / "mina.conf"
SYSLOG_NG = system_tool("syslog-ng")
REQUESTS = 400  # a bounded load: a few seconds on two cores
TYPED = {"user_id": int, "status": int, "duration_ms": (int, float)}

pytestmark = pytest.mark.skipif(
    SYSLOG_NG is None,
    reason=missing_tool_reason("syslog-ng", "syslog-ng-core"),
)


def configure_example(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """The example configuration with its three paths under *tmp_path*."""
    paths = {
        "mina_input": tmp_path / "stdout.log",
        "mina_output": tmp_path / "records.jsonl",
        "mina_unparsed": tmp_path / "unparsed.log",
    }
    lines = EXAMPLE.read_text().splitlines()
    for name, path in paths.items():
        [index] = [i for i, line in enumerate(lines) if line.startswith(f"@define {name} ")]
        lines[index] = f'@define {name} "{path}"'
    config = tmp_path / "syslog-ng.conf"
    config.write_text("\n".join(lines) + "\n")
    return config, paths


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if *process* has not exited within *timeout* seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll *condition* every 0.1 s, failing the test after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def line_count(path: Path) -> int:
    """Complete lines in *path* so far (0 when it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.fixture
def syslog_ng(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Path]]]:
    """syslog-ng in the foreground on the example configuration; stopped at teardown."""
    assert SYSLOG_NG is not None
    config, paths = configure_example(tmp_path)
    paths["mina_input"].touch()
    control = tmp_path / "syslog-ng.ctl"
    with open(tmp_path / "syslog-ng.err", "wb") as err:
        process = subprocess.Popen(
            [
                SYSLOG_NG,
                "--foreground",
                "--no-caps",
                f"--cfgfile={config}",
                f"--persist-file={tmp_path / 'syslog-ng.persist'}",
                f"--pidfile={tmp_path / 'syslog-ng.pid'}",
                f"--control={control}",
            ],
            stdout=err,
            stderr=err,
        )
    try:
        # The control socket exists once the configuration is loaded and sources opened.
        wait_until(lambda: control.exists() or process.poll() is not None, 15, "syslog-ng to start")
        if process.poll() is not None:
            raise AssertionError((tmp_path / "syslog-ng.err").read_text()[-2000:])
        yield process, paths
    finally:
        stop(process)


def start_gunicorn(tmp_path: Path, stdout: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Real gunicorn, 2 workers x 4 threads, appending its stdout to *stdout*."""
    port = free_port()
    env = {
        **os.environ,
        "MINA_BIND": f"127.0.0.1:{port}",
        "MINA_WORKERS": "2",
        "MINA_THREADS": "4",
    }
    with open(stdout, "ab") as out, open(tmp_path / "gunicorn.err", "wb") as err:
        process = subprocess.Popen(
            GUNICORN_APP,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
    return process, f"http://127.0.0.1:{port}"


def call(method: str, url: str, token: str | None, body: dict[str, Any] | None = None) -> int:
    """One request; its status."""
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def load(url: str, token: str, n: int) -> Counter[int]:
    """*n* requests from 4 clients: created, found, not found (an odd path), unauthorised."""
    kinds = [
        ("POST", "/api/meetings", token, {"title": "Standup"}),
        ("GET", "/healthz", None, None),
        ("GET", "/api/meetings/caf%C3%A9%22%5Cx", token, None),  # path: café"\x
        ("GET", "/api/meetings/m-1", None, None),
    ]

    def one(i: int) -> int:
        method, path, auth, body = kinds[i % len(kinds)]
        return call(method, url + path, auth, body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return Counter(pool.map(one, range(n)))


def identity(record: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one line from another: time, event, logger and request."""
    return (record["timestamp"], record["event"], record["logger"], record.get("request_id"))


def test_syslog_ng_parses_every_line_of_two_workers(
    syslog_ng: tuple[subprocess.Popen[bytes], dict[str, Path]], tmp_path: Path
) -> None:
    collector, paths = syslog_ng
    database = tmp_path / "mina.sqlite3"
    db.initialize(str(database))
    with closing(db.connect(str(database))) as conn:
        user_id = db.create_user(conn, "ada", None).id
        token = db.create_token(conn, user_id)
    server, url = start_gunicorn(tmp_path, paths["mina_input"])
    try:
        wait_http(url + "/healthz")
        statuses = load(url, token, REQUESTS)
    finally:
        stop(server)  # gunicorn's last lines (workers exiting) are shipped too

    written = paths["mina_input"].read_bytes().decode().splitlines()
    wait_until(
        lambda: (
            line_count(paths["mina_output"]) + line_count(paths["mina_unparsed"]) >= len(written)
        ),
        30,
        f"syslog-ng to ship {len(written)} lines",
    )
    stop(collector)  # flushes and closes its files
    assert 0 == collector.returncode

    assert dict.fromkeys((201, 200, 404, 401), REQUESTS // 4) == dict(statuses)
    unparsed = paths["mina_unparsed"]
    assert [] == (unparsed.read_text().splitlines() if unparsed.exists() else [])
    sent = [json.loads(line) for line in written]
    shipped = [json.loads(line) for line in paths["mina_output"].read_text().splitlines()]
    assert len(sent) == len(shipped)
    # Each shipped record is exactly one written line: none split, merged or repeated.
    assert Counter(map(identity, sent)) == Counter(map(identity, shipped))
    finished = [record for record in shipped if record["event"] == "request.finished"]
    assert REQUESTS + 1 == len(finished)  # the load and the first /healthz
    by_identity = {identity(record): record for record in sent}
    for record in shipped:
        original = by_identity[identity(record)]
        for key, kind in TYPED.items():
            if key in original:
                assert isinstance(record[key], kind) and not isinstance(record[key], bool)
                assert original[key] == pytest.approx(record[key], abs=1e-6)
        texts = {key: value for key, value in original.items() if isinstance(value, str)}
        assert texts == {key: record[key] for key in texts}
    paths_seen = {record.get("path") for record in finished}
    assert '/api/meetings/café"\\x' in paths_seen
    assert {user_id} == {record["user_id"] for record in finished if "user_id" in record}


def test_a_line_around_a_64_kib_value_arrives_whole(
    syslog_ng: tuple[subprocess.Popen[bytes], dict[str, Path]],
) -> None:
    # Mina's redactor cuts a value at 64 KiB; the line around it must not be cut in two.
    collector, paths = syslog_ng
    record = {
        "timestamp": "2026-11-29T10:00:01.250113Z",
        "level": "error",
        "logger": "mina.api",
        "event": "request.failed",
        "status": 500,
        "exception": "Traceback (most recent call last):\n" + "x" * 65536,
    }
    with open(paths["mina_input"], "a") as stdout:
        stdout.write(json.dumps(record) + "\n")
    wait_until(lambda: line_count(paths["mina_output"]) >= 1, 15, "the record")
    stop(collector)

    assert [record] == [json.loads(line) for line in paths["mina_output"].read_text().splitlines()]
