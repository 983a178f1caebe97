"""mina.api: meetings and chunk uploads through the test client, on a real database."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask
import pytest
import sentry_sdk
import structlog
from freezegun import freeze_time
from structlog.testing import capture_logs

import mina
from mina import api, audio, auth, db
from mina.jobs.chunks import Jobs
from mina.settings import Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

from .support import free_port, make_wav, run_jobs


@pytest.fixture
def app(tmp_path: Path) -> flask.Flask:
    """The API on a small app: database, token auth and the blueprint."""
    app = flask.Flask(__name__)
    app.config.update(TESTING=True, MINA_DATABASE=str(tmp_path / "mina.sqlite3"))
    db.init_app(app)
    auth.init_app(app)
    app.register_blueprint(api.bp)
    settings = Settings(instance_path=tmp_path, database=tmp_path / "mina.sqlite3")
    app.extensions["mina.jobs"] = Jobs(settings, min_backoff_ms=10)  # retries in ms, not s

    @app.before_request
    def set_request_id() -> None:  # what mina's request middleware provides
        flask.g.request_id = "req-1"

    return app


class Client:
    """A test client authenticated as one user."""

    def __init__(self, app: flask.Flask, username: str) -> None:
        with closing(db.connect(app.config["MINA_DATABASE"])) as conn:
            self.user = db.create_user(conn, username)
            self.token = db.create_token(conn, self.user.id)
        self.client = app.test_client()

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send a request with this user's token; return the response."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def create_meeting(self, title: str = "Weekly sync") -> dict[str, Any]:
        """Create a meeting and return its JSON."""
        response = self.request("POST", "/api/meetings", json={"title": title})
        assert 201 == response.status_code, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def upload(self, meeting_id: str, data: bytes, content_type: str = "audio/wav") -> Any:
        """Upload a chunk; return the response."""
        url = f"/api/meetings/{meeting_id}/chunks"
        return self.request("POST", url, data=data, content_type=content_type)


@pytest.fixture
def ada(app: flask.Flask) -> Client:
    """The client of user "ada"."""
    return Client(app, "ada")


@pytest.fixture
def bob(app: flask.Flask) -> Client:
    """The client of user "bob"."""
    return Client(app, "bob")


def finished_chunk(app: flask.Flask, chunk_id: int) -> db.ChunkRow:
    """The chunk row once every queued job has run."""
    run_jobs(app.extensions["mina.jobs"])
    with closing(db.connect(app.config["MINA_DATABASE"])) as conn:
        chunk = db.get_chunk(conn, chunk_id)
    assert chunk is not None
    return chunk


def test_create_and_get_a_meeting(ada: Client, mina_logging: PipelineFactory) -> None:
    mina_logging()  # structlog's capture_logs stands in for a configured pipeline's processors
    with capture_logs() as logs:
        created = ada.create_meeting("  Weekly sync ")
    assert {
        "id": created["id"],
        "title": "Weekly sync",
        "owner_id": ada.user.id,
        "created_at": created["created_at"],
        "chunk_count": 0,
        "duration_ms": 0,
    } == created
    assert [
        {
            "event": "meeting.created",
            "meeting_id": created["id"],
            "title": "Weekly sync",
            "log_level": "info",
        }
    ] == logs
    response = ada.request("GET", f"/api/meetings/{created['id']}")
    assert (200, created) == (response.status_code, response.get_json())


def test_create_answers_with_a_location(ada: Client) -> None:
    response = ada.request("POST", "/api/meetings", json={"title": "Retro"})
    assert f"/api/meetings/{response.get_json()['id']}" == response.headers["Location"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"json": {}}, "invalid_request"),
        ({"json": {"title": 3}}, "invalid_request"),
        ({"json": ["Weekly sync"]}, "invalid_request"),
        ({"data": "not json", "content_type": "application/json"}, "invalid_request"),
        ({"json": {"title": "   "}}, "invalid_title"),
        ({"json": {"title": "x" * 201}}, "invalid_title"),
    ],
)
def test_create_rejects_bad_bodies(ada: Client, body: dict[str, Any], error: str) -> None:
    response = ada.request("POST", "/api/meetings", **body)
    assert 400 == response.status_code
    assert (error, "req-1") == (response.get_json()["error"], response.get_json()["request_id"])
    assert response.get_json()["message"]


def test_get_binds_the_meeting(app: flask.Flask) -> None:
    seen: dict[str, Any] = {}

    @app.after_request
    def capture(response: flask.Response) -> flask.Response:
        seen["log"] = structlog.contextvars.get_contextvars()
        seen["sentry"] = sentry_sdk.get_isolation_scope()._contexts.get("meeting")
        return response

    ada = Client(app, "ada")
    meeting = ada.create_meeting()
    ada.request("GET", f"/api/meetings/{meeting['id']}")
    assert meeting["id"] == seen["log"]["meeting_id"]
    expected = {"id": meeting["id"], "title": "Weekly sync", "chunk_count": 0, "audio_ms": 0}
    assert expected == seen["sentry"]


def test_someone_elses_meeting_is_403(ada: Client, bob: Client) -> None:
    meeting = ada.create_meeting()
    response = bob.request("GET", f"/api/meetings/{meeting['id']}")
    assert 403 == response.status_code
    assert {
        "error": "forbidden",
        "message": "this meeting belongs to another user",
        "request_id": "req-1",
    } == response.get_json()
    assert 403 == bob.upload(meeting["id"], make_wav([0] * 10)).status_code


def test_a_missing_meeting_is_404(ada: Client) -> None:
    response = ada.request("GET", "/api/meetings/nope")
    assert 404 == response.status_code
    assert {
        "error": "not_found",
        "message": "no meeting with this id",
        "request_id": "req-1",
    } == response.get_json()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/api/meetings"),
        ("GET", "/api/meetings"),
        ("GET", "/api/meetings/abc"),
        ("POST", "/api/meetings/abc/chunks"),
        ("GET", "/api/meetings/abc/chunks"),
    ],
)
def test_every_route_needs_a_token(app: flask.Flask, method: str, url: str) -> None:
    response = app.test_client().open(url, method=method)
    assert (401, "unauthorized") == (response.status_code, response.get_json()["error"])


def test_upload_a_chunk_and_process_it_through_the_queue(
    ada: Client, app: flask.Flask, mina_logging: PipelineFactory
) -> None:
    mina_logging()  # structlog's capture_logs stands in for a configured pipeline's processors
    meeting = ada.create_meeting()
    data = make_wav([16384, -16384] * 8000)  # 1 s of a half-scale square wave: -6.02 dBFS
    with capture_logs() as logs:
        response = ada.upload(meeting["id"], data)
        assert 202 == response.status_code
        chunk = response.get_json()
        processed = finished_chunk(app, chunk["id"])
    assert {
        "id": chunk["id"],
        "meeting_id": meeting["id"],
        "seq": 0,
        "status": "received",
        "duration_ms": 1000,
        "rms_dbfs": None,
        "sample_rate": 16000,
        "channels": 1,
        "size_bytes": len(data),
        "created_at": chunk["created_at"],
    } == chunk
    assert ("processed", -6.02) == (processed.status, round(processed.rms_dbfs or 0, 2))
    events = {log["event"]: log for log in logs}
    assert {
        "event": "chunk.received",
        "chunk_id": chunk["id"],
        "seq": 0,
        "audio_ms": 1000,
        "size_bytes": len(data),
        "log_level": "info",
    } == events["chunk.received"]
    assert {
        "event": "chunk.processed",
        "chunk_id": chunk["id"],
        "audio_ms": 1000,
        "rms_dbfs": -6.02,
        "log_level": "info",
    } == events["chunk.processed"]
    after = ada.request("GET", f"/api/meetings/{meeting['id']}").get_json()
    assert (1, 1000) == (after["chunk_count"], after["duration_ms"])


def test_list_meetings_shows_only_mine_newest_first_in_pages(ada: Client, bob: Client) -> None:
    mine = []
    with freeze_time("2026-11-29 10:00:00") as clock:
        for n in range(5):
            mine.append(ada.create_meeting(f"Sync {n}"))
            clock.tick(1)  # a second apart: the order is the creation time's
    bob.create_meeting("Bob's")

    first = ada.request("GET", "/api/meetings?limit=2")
    assert 200 == first.status_code
    pages = [first.get_json()]
    while pages[-1]["next"] is not None and len(pages) < 10:
        pages.append(ada.request("GET", pages[-1]["next"]).get_json())

    assert [[4, 3], [2, 1], [0]] == [[mine.index(m) for m in page["meetings"]] for page in pages]
    assert "/api/meetings?limit=2&before=" + mine[3]["id"] == pages[0]["next"]
    assert None is pages[-1]["next"]
    assert {"meetings": [], "next": None} == bob.request(
        "GET", "/api/meetings?before=" + mine[0]["id"]
    ).get_json()


def test_list_meetings_default_page(ada: Client) -> None:
    meeting = ada.create_meeting()
    assert {"meetings": [meeting], "next": None} == ada.request("GET", "/api/meetings").get_json()


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "limit=%C2%B2", "limit=-1"])
def test_a_bad_page_size_is_400(ada: Client, query: str) -> None:
    response = ada.request("GET", "/api/meetings?" + query)
    assert (400, "invalid_request", "limit must be a whole number, 1 to 200") == (
        response.status_code,
        response.get_json()["error"],
        response.get_json()["message"],
    )


def test_list_chunks_with_seq_status_and_level(
    ada: Client, app: flask.Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    meeting = ada.create_meeting()
    ada.upload(meeting["id"], make_wav([16384, -16384] * 80))
    run_jobs(app.extensions["mina.jobs"])
    monkeypatch.setattr(audio, "rms_dbfs", lambda frames, width: 1 / 0)  # the analysis fails
    ada.upload(meeting["id"], make_wav([0] * 160))
    run_jobs(app.extensions["mina.jobs"])

    response = ada.request("GET", f"/api/meetings/{meeting['id']}/chunks")

    assert 200 == response.status_code
    body = response.get_json()
    assert [(0, "processed", -6.02), (1, "failed", None)] == [
        (c["seq"], c["status"], None if c["rms_dbfs"] is None else round(c["rms_dbfs"], 2))
        for c in body["chunks"]
    ]
    assert None is body["next"]


def test_list_chunks_pages_by_seq(ada: Client) -> None:
    meeting = ada.create_meeting()
    for _ in range(3):
        ada.upload(meeting["id"], make_wav([0] * 160))
    url = f"/api/meetings/{meeting['id']}/chunks"

    first = ada.request("GET", url + "?limit=2").get_json()
    second = ada.request("GET", first["next"]).get_json()

    assert ([0, 1], f"{url}?limit=2&after=1") == (
        [c["seq"] for c in first["chunks"]],
        first["next"],
    )
    assert ([2], None) == ([c["seq"] for c in second["chunks"]], second["next"])
    bad = ada.request("GET", url + "?after=x")
    assert (400, "after must be a chunk's seq, a whole number") == (
        bad.status_code,
        bad.get_json()["message"],
    )


def test_someone_elses_chunks_are_403(ada: Client, bob: Client) -> None:
    meeting = ada.create_meeting()
    response = bob.request("GET", f"/api/meetings/{meeting['id']}/chunks")
    assert (403, "forbidden") == (response.status_code, response.get_json()["error"])


def test_chunks_are_numbered_in_order(ada: Client) -> None:
    meeting = ada.create_meeting()
    seqs = [ada.upload(meeting["id"], make_wav([0] * 160)).get_json()["seq"] for _ in range(3)]
    assert [0, 1, 2] == seqs


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the body is empty; expected a WAV file"),
        (b"ID3\x04 an mp3", "not a WAV file: the RIFF/WAVE header is missing"),
        (make_wav([]), "the WAV file has no audio frames"),
    ],
)
def test_invalid_audio_is_400(ada: Client, data: bytes, message: str) -> None:
    meeting = ada.create_meeting()
    response = ada.upload(meeting["id"], data)
    assert 400 == response.status_code
    assert {"error": "invalid_audio", "message": message, "request_id": "req-1"} == (
        response.get_json()
    )
    after = ada.request("GET", f"/api/meetings/{meeting['id']}").get_json()
    assert 0 == after["chunk_count"]


def test_wrong_content_type_is_415(ada: Client) -> None:
    meeting = ada.create_meeting()
    response = ada.upload(meeting["id"], make_wav([0] * 10), content_type="audio/mpeg")
    assert 415 == response.status_code
    assert {
        "error": "unsupported_media_type",
        "message": "send the chunk as Content-Type: audio/wav, not 'audio/mpeg'",
        "request_id": "req-1",
    } == response.get_json()


def test_too_large_is_413(ada: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio, "MAX_BYTES", 100)
    meeting = ada.create_meeting()
    response = ada.upload(meeting["id"], make_wav([0] * 1000))
    assert 413 == response.status_code
    assert {
        "error": "too_large",
        "message": "a chunk may be at most 100 bytes",
        "request_id": "req-1",
    } == response.get_json()


def test_a_failing_job_marks_the_chunk_failed(
    ada: Client, app: flask.Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(frames: bytes, sample_width: int) -> float:
        raise RuntimeError("analysis crashed")

    monkeypatch.setattr(audio, "rms_dbfs", broken)
    meeting = ada.create_meeting()
    chunk = ada.upload(meeting["id"], make_wav([0] * 10)).get_json()
    assert "failed" == finished_chunk(app, chunk["id"]).status


def test_through_the_whole_app_logs_and_sentry_carry_user_and_meeting(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_logging()
    app = mina.create_app({"SENTRY_DSN": sentry_ingest.dsn, "SENTRY_TRACES_SAMPLE_RATE": "1"})
    ada = Client(app, "ada")
    meeting = ada.create_meeting()
    response = ada.upload(meeting["id"], make_wav([1000, -1000] * 800))
    run_jobs(app.extensions["mina.jobs"])
    sentry_sdk.flush(timeout=5)

    assert 202 == response.status_code
    request_id = response.headers["X-Request-ID"]
    context_keys = ("request_id", "user_id", "username", "meeting_id")
    expected = (request_id, ada.user.id, "ada", meeting["id"])
    [received] = lines.events("chunk.received")
    [processed] = lines.events("chunk.processed")
    assert expected == tuple(received[key] for key in context_keys)
    assert expected == tuple(processed[key] for key in context_keys)  # from the job
    assert ("info", -30.31) == (processed["level"], processed["rms_dbfs"])

    transactions = sentry_ingest.wait_for_transactions(n=3)  # 2 requests, 1 job
    # The job's transaction carries the request it was submitted from, and may finish first.
    upload = next(t for t in transactions if t["contexts"]["trace"]["op"] == "http.server"
                  and t["request"]["url"].endswith("/chunks"))  # fmt: skip
    job = next(t for t in transactions if t["contexts"]["trace"]["op"] == "queue.task")
    assert upload["contexts"]["trace"]["trace_id"] == job["contexts"]["trace"]["trace_id"]
    assert {"id": str(ada.user.id), "username": "ada"} == upload["user"]
    assert meeting["id"] == upload["tags"]["meeting_id"]
    assert {
        "id": meeting["id"],
        "title": "Weekly sync",
        "chunk_count": 1,
        "audio_ms": 100,
        "sample_rate": 16000,
        "channels": 1,
        "sample_width": 2,
    } == upload["contexts"]["meeting"]
    db_spans = [s["description"] for s in upload["spans"] if s["op"] == "db"]
    assert {"SELECT api_tokens", "SELECT meetings", "INSERT chunks"} <= set(db_spans)
    job_spans = [(s["op"], s["description"]) for s in job["spans"]]
    assert [
        ("db", "CONNECT"),
        ("db", "SELECT chunks"),
        ("db", "SELECT chunk_audio"),
        ("audio", "RMS level"),
        ("db", "UPDATE chunks"),
    ] == job_spans


def test_through_the_whole_app_401_carries_the_request_id(
    mina_logging: PipelineFactory,
) -> None:
    mina_logging()
    response = mina.create_app().test_client().get("/api/meetings/abc")
    assert 401 == response.status_code
    assert response.headers["X-Request-ID"] == response.get_json()["request_id"]


def test_an_upload_whose_job_cannot_be_sent_is_kept_for_the_redrive(
    mina_logging: PipelineFactory,
) -> None:
    lines = mina_logging()
    # A broker that is down: nothing listens on this port.
    app = mina.create_app({"MINA_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    ada = Client(app, "ada")
    meeting = ada.create_meeting()

    response = ada.upload(meeting["id"], make_wav([0] * 160))

    assert (202, "received") == (response.status_code, response.get_json()["status"])
    [failed] = lines.events("chunk.enqueue_failed")
    assert ("error", response.get_json()["id"], response.headers["X-Request-ID"]) == (
        failed["level"],
        failed["chunk_id"],
        failed["request_id"],
    )
    assert "ConnectionError" in failed["exception"]
    with closing(db.connect(app.config["MINA_DATABASE"])) as conn:
        assert [failed["chunk_id"]] == db.received_chunks(conn, timedelta(0), 10)
