"""End to end: real gunicorn (gthread, 2 workers x 4 threads), real Sentry transport.

Many concurrent requests from different users on different meetings; every stdout line
and every event, breadcrumb and transaction must carry exactly its own request's
request_id, user and meeting.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

from mina import db
from mina.testing import SentryIngest

from .support import EXPLODE_LOGGER, Server, make_wav

USERS = 6
ROUNDS = 4


def call(
    server: Server, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_concurrent_requests_never_cross_talk(
    gunicorn: Callable[..., Server], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    database = str(tmp_path / "e2e.sqlite3")
    db.initialize(database)
    tokens: dict[int, str] = {}
    with closing(db.connect(database)) as conn:
        for n in range(USERS):
            user = db.create_user(conn, f"user{n}", f"user{n}@example.org")
            tokens[user.id] = db.create_token(conn, user.id)
    server = gunicorn(
        {
            "SENTRY_DSN": sentry_ingest.dsn,
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "SENTRY_PROFILES_SAMPLE_RATE": "0",
            "MINA_DATABASE": database,
        },
        app="tests.support:create_app()",
    )
    meetings: dict[int, str] = {}
    for user_id, token in tokens.items():
        status, _, body = call(
            server,
            "POST",
            "/api/meetings",
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            json.dumps({"title": f"meeting of {user_id}"}).encode(),
        )
        assert 201 == status
        meetings[user_id] = json.loads(body)["id"]

    # request id -> (user id, meeting id, expected status)
    expected: dict[str, tuple[int, str, int]] = {}
    jobs = []
    for user_id, token in tokens.items():
        meeting = meetings[user_id]
        auth = {"Authorization": f"Bearer {token}"}
        for r in range(ROUNDS):
            base = f"u{user_id}-r{r}"
            jobs += [
                (f"{base}-get", "GET", f"/api/meetings/{meeting}", auth, None, 200),
                (
                    f"{base}-chunk",
                    "POST",
                    f"/api/meetings/{meeting}/chunks",
                    {**auth, "Content-Type": "audio/wav"},
                    make_wav([3000, -3000] * 400, rate=8000),
                    202,
                ),
                (f"{base}-boom", "GET", f"/api/meetings/{meeting}/explode", auth, None, 500),
            ]
            for request_id, *_, status in jobs[-3:]:
                expected[request_id] = (user_id, meeting, status)

    def run(job: tuple[Any, ...]) -> tuple[str, int, str]:
        request_id, method, path, headers, body, _ = job
        status, response_headers, _ = call(
            server, method, path, {**headers, "X-Request-ID": request_id}, body
        )
        return request_id, status, response_headers["X-Request-ID"]

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(run, jobs))
    assert [(rid, expected[rid][2], rid) for rid, *_ in results] == results

    booms = [rid for rid in expected if rid.endswith("-boom")]
    chunks = [rid for rid in expected if rid.endswith("-chunk")]
    # one transaction per request (setup included) and one per background job
    sentry_ingest.wait_for_transactions(n=len(expected) + USERS + len(chunks), timeout=30)
    events = sentry_ingest.wait_for_events(n=len(booms), timeout=30)
    lines, stderr = server.stop()
    transactions = sentry_ingest.transactions
    assert "" == stderr

    # stdout: every line of a request carries exactly that request's user and meeting
    per_request: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line.get("request_id") in expected:
            per_request.setdefault(line["request_id"], []).append(line)
    assert set(expected) == set(per_request)
    for request_id, request_lines in per_request.items():
        user_id, meeting, status = expected[request_id]
        assert {(user_id, f"user{user_id - 1}", meeting)} == {
            (line["user_id"], line["username"], line["meeting_id"]) for line in request_lines
        }
        assert 1 == len({line["trace_id"] for line in request_lines}), request_id
        [finished] = [line for line in request_lines if line["event"] == "request.finished"]
        assert status == finished["status"]
        if request_id.endswith("-chunk"):
            assert any(line["event"] == "chunk.processed" for line in request_lines)
    assert not any("@example.org" in json.dumps(line) for line in lines)

    # events: tags, user and breadcrumbs of exactly one request
    assert sorted(booms) == sorted(event["tags"]["request_id"] for event in events)
    for event in events:
        request_id = event["tags"]["request_id"]
        user_id, meeting, _ = expected[request_id]
        assert meeting == event["tags"]["meeting_id"]
        assert {"id": str(user_id), "username": f"user{user_id - 1}"} == event["user"]
        crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("category") == EXPLODE_LOGGER]
        assert [{"nonce": request_id}] == [c["data"] for c in crumbs]
        trace_ids = {line["trace_id"] for line in per_request[request_id]}
        assert {event["contexts"]["trace"]["trace_id"]} == trace_ids

    # transactions: the request's own, and the background jobs', on the same trace
    by_request: dict[str, list[dict[str, Any]]] = {}
    for transaction in transactions:
        request_id = transaction.get("tags", {}).get("request_id")
        if request_id in expected:
            by_request.setdefault(request_id, []).append(transaction)
    for request_id, found in by_request.items():
        user_id, meeting, _ = expected[request_id]
        assert (2 if request_id.endswith("-chunk") else 1) == len(found), request_id
        for transaction in found:
            assert meeting == transaction["tags"]["meeting_id"]
            assert str(user_id) == transaction["user"]["id"]
        trace_ids = {t["contexts"]["trace"]["trace_id"] for t in found}
        assert {line["trace_id"] for line in per_request[request_id]} == trace_ids
    assert set(expected) == set(by_request)


def test_request_id_through_gunicorn(gunicorn: Callable[..., Server]) -> None:
    server = gunicorn(workers=1, threads=2)
    cases = {
        "kept-1.2:3": "/healthz",
        'quote"d': "/healthz",
        "z" * 8000: "/api/meetings/m-1",  # gunicorn's own limit is 8190 bytes per field
        "semi;colon": "/nowhere",
    }

    answers = {
        value: call(server, "GET", path, {"X-Request-ID": value}) for value, path in cases.items()
    }
    lines, _ = server.stop()

    assert "kept-1.2:3" == answers["kept-1.2:3"][1]["X-Request-ID"]
    assert [200, 200, 401, 404] == [status for status, _, _ in answers.values()]
    finished = {line["request_id"]: line for line in lines if line["event"] == "request.finished"}
    for value, (status, headers, body) in answers.items():
        echoed = headers["X-Request-ID"]
        assert status == finished[echoed]["status"]
        if value != "kept-1.2:3":
            assert 32 == len(echoed) and echoed != value
        if status >= 400:
            assert echoed == json.loads(body)["request_id"]
    rejected = [
        line["rejected"] for line in lines if line["event"] == "request.request_id_rejected"
    ]
    assert ['quote"d', "z" * 64 + "...(8000 chars)", "semi;colon"] == rejected
