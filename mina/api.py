"""The meetings API: create, list and read meetings, upload and list their audio chunks.

Every route needs a bearer token (`mina.auth`). A meeting is visible to its owner only:
404 when it does not exist, 403 when it is someone else's. Errors answer
``{"error": <code word>, "message": <readable>, "request_id": ...}``.

An uploaded chunk is validated and stored as ``received`` with its WAV within the
request; once that is committed, its job is sent to the queue (`mina.jobs.chunks`), which
measures its level and marks it ``processed``.
"""

from __future__ import annotations

import re
from typing import Final

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from mina import audio, auth, bodies, db
from mina.errors import http_error
from mina.jobs.chunks import Jobs
from mina.observability import context
from mina.observability.pipeline import get_logger

__all__ = ["ApiError", "bp"]

#: The API's blueprint, mounted at ``/api``.
bp = Blueprint("api", __name__, url_prefix="/api")

log = get_logger(__name__)

TITLE_MAX: Final = 200
#: Items per page of a list when the client does not say, and the most it may ask for.
PAGE_DEFAULT: Final = 50
PAGE_MAX: Final = 200
# ASCII digits only, short: str.isdigit() takes "²", and a thousand digits is no page.
_DIGITS: Final = re.compile(r"[0-9]{1,12}")
# The spellings of WAV media types seen in the wild.
_WAV_TYPES: Final = frozenset({"audio/wav", "audio/wave", "audio/x-wav", "audio/vnd.wave"})


class ApiError(HTTPException):
    """An HTTP error with a code word for clients, answered as JSON."""

    def __init__(self, code: int, error: str, message: str) -> None:
        super().__init__(description=message)
        self.code = code
        self.error = error


bp.register_error_handler(HTTPException, http_error)  # also when mounted on a bare app


def _owned_meeting(meeting_id: str) -> db.MeetingRow:
    """The meeting, bound to the context, if the current user owns it; else 404 or 403."""
    context.bind_meeting(meeting_id)  # also on the warning line of a 404 or 403
    meeting = db.get_meeting(db.get_db(), meeting_id)
    if meeting is None:
        raise ApiError(404, "not_found", "no meeting with this id")
    if meeting.owner_id != auth.current_user().id:
        raise ApiError(403, "forbidden", "this meeting belongs to another user")
    context.bind_meeting(
        meeting.id,
        title=meeting.title,
        chunk_count=meeting.chunk_count,
        audio_ms=meeting.duration_ms,
    )
    return meeting


@bp.post("/meetings")
@auth.login_required
def create_meeting() -> tuple[Response, int, dict[str, str]]:
    """Create a meeting from ``{"title": str}``; 201 with the meeting."""
    payload = request.get_json(silent=True)
    if payload is None and bodies.too_deep(request):
        raise ApiError(
            400,
            "too_deep",
            "the JSON body is nested too deeply; send a flat object such as"
            ' {"title": "Weekly sync"}',
        )
    if not isinstance(payload, dict) or not isinstance(payload.get("title"), str):
        raise ApiError(
            400, "invalid_request", 'expected a JSON object such as {"title": "Weekly sync"}'
        )
    title = payload["title"].strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise ApiError(400, "invalid_title", f"the title must be 1 to {TITLE_MAX} characters")
    meeting = db.create_meeting(db.get_db(), auth.current_user().id, title)
    context.bind_meeting(meeting.id, title=meeting.title)
    log.info("meeting.created", meeting_id=meeting.id, title=meeting.title)
    location = url_for(".get_meeting", meeting_id=meeting.id)
    return jsonify(meeting.to_json()), 201, {"Location": location}


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return PAGE_DEFAULT
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= PAGE_MAX:
        raise ApiError(400, "invalid_request", f"limit must be a whole number, 1 to {PAGE_MAX}")
    return int(raw)


def _page(key: str, items: list[dict[str, object]], next_url: str | None) -> Response:
    # One shape for every list: the items, and the URL of the next page (null on the last).
    return jsonify({key: items, "next": next_url})


@bp.get("/meetings")
@auth.login_required
def list_meetings() -> Response:
    """The current user's meetings, newest first: ``{"meetings": [...], "next": url}``.

    ``?limit=`` (1 to 200, default 50) sizes a page; ``next`` is the URL of the next one
    (``?before=<last id>``), null on the last page.
    """
    limit = _limit()
    before = request.args.get("before")
    # One more than asked tells whether a next page exists without counting.
    rows = db.list_meetings(db.get_db(), auth.current_user().id, limit=limit + 1, before=before)
    page = rows[:limit]
    next_url = (
        url_for(".list_meetings", limit=limit, before=page[-1].id) if len(rows) > limit else None
    )
    return _page("meetings", [row.to_json() for row in page], next_url)


@bp.get("/meetings/<meeting_id>")
@auth.login_required
def get_meeting(meeting_id: str) -> Response:
    """The meeting with its chunk count and total duration."""
    return jsonify(_owned_meeting(meeting_id).to_json())


@bp.post("/meetings/<meeting_id>/chunks")
@auth.login_required
def upload_chunk(meeting_id: str) -> tuple[Response, int]:
    """Append a WAV chunk (the raw body, ``Content-Type: audio/wav``); 202 with the chunk.

    The chunk is stored as ``received``; a job measures its level (`mina.jobs.chunks`).
    """
    meeting = _owned_meeting(meeting_id)
    if request.mimetype not in _WAV_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the chunk as Content-Type: audio/wav, not {request.mimetype or 'none'!r}",
        )
    request.max_content_length = audio.MAX_BYTES
    try:
        data = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise ApiError(
            413, "too_large", f"a chunk may be at most {audio.MAX_BYTES} bytes"
        ) from None
    try:
        wav = audio.read_wav(data)
    except audio.InvalidAudio as exc:
        raise ApiError(400, "invalid_audio", str(exc)) from None
    chunk = db.add_chunk(
        db.get_db(),
        meeting.id,
        duration_ms=wav.duration_ms,
        sample_rate=wav.sample_rate,
        channels=wav.channels,
        size_bytes=len(data),
        wav=data,
    )
    context.bind_meeting(
        meeting.id,
        chunk_count=meeting.chunk_count + 1,
        audio_ms=meeting.duration_ms + wav.duration_ms,
        sample_rate=wav.sample_rate,
        channels=wav.channels,
        sample_width=wav.sample_width,
    )
    log.info(
        "chunk.received",
        chunk_id=chunk.id,
        seq=chunk.seq,
        audio_ms=chunk.duration_ms,  # duration_ms is a request's latency on every line
        size_bytes=chunk.size_bytes,
    )
    # Sent after the commit (add_chunk's): a worker never looks for a chunk not yet
    # visible. Lost here, the job is sent again by the re-drive: the upload has succeeded.
    jobs: Jobs = current_app.extensions["mina.jobs"]
    try:
        jobs.process_chunk.send(chunk.id)
    except Exception:
        log.exception("chunk.enqueue_failed", chunk_id=chunk.id)
    return jsonify(chunk.to_json()), 202


@bp.get("/meetings/<meeting_id>/chunks")
@auth.login_required
def list_chunks(meeting_id: str) -> Response:
    """The meeting's chunks in upload order: ``{"chunks": [...], "next": url}``.

    Each chunk has its ``seq``, its ``status`` (``received``, then ``processed`` once its
    level is measured, or ``failed``) and ``rms_dbfs`` (null until processed, and when
    it failed). ``?limit=`` as for meetings; ``next`` continues with ``?after=<last seq>``.
    """
    meeting = _owned_meeting(meeting_id)
    limit = _limit()
    raw_after = request.args.get("after")
    if raw_after is not None and not _DIGITS.fullmatch(raw_after):
        raise ApiError(400, "invalid_request", "after must be a chunk's seq, a whole number")
    after = -1 if raw_after is None else int(raw_after)
    rows = db.list_chunks(db.get_db(), meeting.id, limit=limit + 1, after_seq=after)
    page = rows[:limit]
    next_url = (
        url_for(".list_chunks", meeting_id=meeting.id, limit=limit, after=page[-1].seq)
        if len(rows) > limit
        else None
    )
    return _page("chunks", [row.to_json() for row in page], next_url)
