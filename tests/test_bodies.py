"""mina.bodies: request bodies bounded, never cut, never too deep.

Size and depth through Mina's app and the local Sentry ingest; chunked uploads and a
100 MB announced body against real gunicorn (2 workers x 4 threads), where
``Transfer-Encoding: chunked`` is really decoded by the server.
"""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import flask
import pytest
import sentry_sdk
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.exceptions import RequestEntityTooLarge

import mina
from mina import audio, db
from mina.bodies import StrictLimitedStream
from mina.settings import ConfigError, Settings
from mina.testing import SentryIngest

from .support import Server, make_wav


def _user(database: Path) -> str:
    db.initialize(database)
    with closing(db.connect(database)) as conn:
        return db.create_token(conn, db.create_user(conn, "ada").id)


@pytest.fixture
def app_and_token(
    sentry_ingest: SentryIngest, tmp_path: Path
) -> Callable[..., tuple[flask.Flask, dict[str, str]]]:
    """Mina's app sending to the local ingest, and a user's auth header."""

    def build(**env: str) -> tuple[flask.Flask, dict[str, str]]:
        database = tmp_path / "bodies.sqlite3"
        token = _user(database)
        app = mina.create_app(
            {
                "SENTRY_DSN": sentry_ingest.dsn,
                "SENTRY_TRACES_SAMPLE_RATE": "1.0",
                "SENTRY_PROFILES_SAMPLE_RATE": "0",
                "MINA_DATABASE": str(database),
                **env,
            }
        )
        return app, {"Authorization": f"Bearer {token}"}

    return build


# --- the size limit -----------------------------------------------------------------------


def test_a_json_body_over_the_limit_answers_413_with_the_json_error(
    app_and_token: Callable[..., tuple[flask.Flask, dict[str, str]]],
) -> None:
    app, auth = app_and_token(MINA_MAX_JSON_BYTES="2048")
    client = app.test_client()
    body = json.dumps({"title": "x", "pad": "a" * 2048}).encode()

    response = client.post(
        "/api/meetings", data=body, content_type="application/json", headers=auth
    )

    assert 413 == response.status_code
    assert {
        "error": "too_large",
        "message": "the request body may be at most 2048 bytes",
        "request_id": response.headers["X-Request-ID"],
    } == response.get_json()


def test_a_json_body_at_the_limit_is_accepted(
    app_and_token: Callable[..., tuple[flask.Flask, dict[str, str]]],
) -> None:
    app, auth = app_and_token(MINA_MAX_JSON_BYTES="2048")
    prefix = b'{"title": "x", "pad": "'
    body = prefix + b"a" * (2048 - len(prefix) - 2) + b'"}'
    assert 2048 == len(body)

    response = app.test_client().post(
        "/api/meetings", data=body, content_type="application/json", headers=auth
    )

    assert 201 == response.status_code


def test_the_default_limit_is_one_mebibyte() -> None:
    assert 1024 * 1024 == Settings.from_env({}).max_json_bytes


@pytest.mark.parametrize("raw", ["", "lots", "-1", "1023", "1.5"])
def test_a_bad_limit_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"MINA_MAX_JSON_BYTES": raw})
    assert f"MINA_MAX_JSON_BYTES={raw!r} is invalid: expected a whole number, 1024 or more" == str(
        caught.value
    )


# --- depth ----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [3_000, 10_000, 100_000])
def test_deep_json_answers_400_and_sends_no_sentry_event(
    app_and_token: Callable[..., tuple[flask.Flask, dict[str, str]]],
    sentry_ingest: SentryIngest,
    depth: int,
) -> None:
    app, auth = app_and_token()
    body = b'{"title": ' + b"[" * depth + b"]" * depth + b"}"

    response = app.test_client().post(
        "/api/meetings", data=body, content_type="application/json", headers=auth
    )
    sentry_sdk.flush(timeout=5)

    assert 400 == response.status_code
    assert (
        "too_deep",
        'the JSON body is nested too deeply; send a flat object such as {"title": "Weekly sync"}',
    ) == (response.get_json()["error"], response.get_json()["message"])
    assert ["/api/meetings"] == [t["transaction"] for t in sentry_ingest.transactions]
    assert [] == sentry_ingest.events


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "invalid_request"),
        (b"[1, 2]", "invalid_request"),
        (b"[" * 50, "invalid_request"),
    ],
)
def test_other_bad_json_is_not_called_too_deep(
    app_and_token: Callable[..., tuple[flask.Flask, dict[str, str]]], body: bytes, error: str
) -> None:
    app, auth = app_and_token()
    response = app.test_client().post(
        "/api/meetings", data=body, content_type="application/json", headers=auth
    )
    assert (400, error) == (response.status_code, response.get_json()["error"])


def test_json_as_deep_as_python_allows_still_parses(
    app_and_token: Callable[..., tuple[flask.Flask, dict[str, str]]],
) -> None:
    app, _ = app_and_token()
    with app.app_context():
        assert [[[]]] == app.json.loads("[[[]]]")
        with pytest.raises(ValueError, match="JSON nested too deeply"):
            app.json.loads("[" * 100_000 + "]" * 100_000)


# --- never truncated ----------------------------------------------------------------------


@given(size=st.integers(0, 80), maximum=st.integers(0, 40), read=st.integers(1, 9))
def test_a_strict_stream_gives_the_whole_body_or_raises(size: int, maximum: int, read: int) -> None:
    body = bytes(range(size))
    stream = StrictLimitedStream(io.BytesIO(body), maximum)

    def read_all() -> bytes:
        out = b""
        while chunk := stream.read(read):
            out += chunk
        return out

    if size <= maximum:
        assert body == read_all()
        assert body[:0] == stream.read()
    else:
        with pytest.raises(RequestEntityTooLarge):
            read_all()


def _post(
    server: Server,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    chunked: bool = False,
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        if chunked:
            assert body is not None
            parts: Iterator[bytes] = (body[i : i + 65536] for i in range(0, len(body), 65536))
            conn.request("POST", path, body=parts, headers=headers, encode_chunked=True)
        elif body is None:  # headers only: a client that waits for the answer first
            conn.putrequest("POST", path)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
        else:
            conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture
def served(
    gunicorn: Callable[..., Server], tmp_path: Path
) -> tuple[Server, dict[str, str], str, Path]:
    """Real gunicorn, a user's auth header, one of their meetings, the database."""
    database = tmp_path / "served.sqlite3"
    auth = {"Authorization": f"Bearer {_user(database)}"}
    server = gunicorn({"MINA_DATABASE": str(database)}, workers=2, threads=4)
    status, meeting = _post(
        server,
        "/api/meetings",
        b'{"title": "Standup"}',
        {**auth, "Content-Type": "application/json"},
    )
    assert 201 == status
    return server, auth, meeting["id"], database


def _chunk_of(size: int) -> bytes:
    wav = make_wav([0] * ((size - 44) // 2))
    assert size == len(wav)
    return wav


def test_a_chunked_upload_over_the_limit_answers_413_and_stores_nothing(
    served: tuple[Server, dict[str, str], str, Path],
) -> None:
    server, auth, meeting_id, database = served
    wav = _chunk_of(audio.MAX_BYTES + 2)

    status, body = _post(
        server,
        f"/api/meetings/{meeting_id}/chunks",
        wav,
        {**auth, "Content-Type": "audio/wav"},
        chunked=True,
    )

    assert (413, "too_large") == (status, body["error"])
    assert f"a chunk may be at most {audio.MAX_BYTES} bytes" == body["message"]
    with closing(db.connect(database)) as conn:
        assert 0 == conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]


def test_a_chunked_upload_of_exactly_the_limit_is_accepted_whole(
    served: tuple[Server, dict[str, str], str, Path],
) -> None:
    server, auth, meeting_id, _ = served
    wav = _chunk_of(audio.MAX_BYTES)

    status, body = _post(
        server,
        f"/api/meetings/{meeting_id}/chunks",
        wav,
        {**auth, "Content-Type": "audio/wav"},
        chunked=True,
    )

    assert (202, audio.MAX_BYTES) == (status, body["size_bytes"])


def test_a_chunked_json_body_over_the_limit_answers_413(
    served: tuple[Server, dict[str, str], str, Path],
) -> None:
    server, auth, _, _ = served
    body = json.dumps({"title": "x", "pad": "a" * (1024 * 1024)}).encode()

    status, answer = _post(
        server, "/api/meetings", body, {**auth, "Content-Type": "application/json"}, chunked=True
    )

    assert (413, "too_large") == (status, answer["error"])


def test_a_100_mb_json_body_is_refused_before_it_is_read(
    served: tuple[Server, dict[str, str], str, Path],
) -> None:
    server, auth, _, _ = served
    headers = {**auth, "Content-Type": "application/json", "Content-Length": str(100 * 10**6)}

    status, answer = _post(server, "/api/meetings", None, headers)

    assert 413 == status
    assert {
        "error": "too_large",
        "message": "the request body may be at most 1048576 bytes",
    } == {k: answer[k] for k in ("error", "message")}
