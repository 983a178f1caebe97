"""How much the redactor costs per log call and per Sentry event.

Run: ``.venv/bin/python bench/bench_redaction.py [rounds]``. Prints the median microseconds
per call of each case, measured in interleaved rounds (each round times every case once,
so machine noise hits all cases alike). No timing is asserted anywhere: read the ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from mina.observability.sentry.payloads import redact_sentry_event
from mina.redaction import Redactor

CALLS_PER_ROUND = 200


def typical_event(i: int) -> dict[str, Any]:
    """A typical 12-key structlog event dict; the id, time and meeting change every call."""
    return {
        "event": "meeting.transcribed",
        "level": "info",
        "logger": "mina.observability.flask",
        "timestamp": f"2026-11-29T05:{i % 60:02d}:{i % 59:02d}.{i % 999999:06d}Z",
        "request_id": str(uuid.UUID(int=i)),
        "method": "POST",
        "path": "/api/meetings/transcribe",
        "route": "/api/meetings/transcribe",
        "user_id": 42,
        "meeting_id": f"m-{i}",
        "duration_ms": 12.5,
        "status": 201,
    }


def sentry_event() -> dict[str, Any]:
    """A large Sentry error event: 100 breadcrumbs, 20 frames with locals, a request."""
    frame = {
        "filename": "mina/web.py",
        "abs_path": "/app/mina/web.py",
        "function": "transcribe",
        "module": "mina.observability.flask",
        "lineno": 42,
        "pre_context": ["def transcribe(meeting_id):", "    audio = load(meeting_id)"],
        "context_line": "    result = client.transcribe(audio, api_key=settings.api_key)",
        "post_context": ["    return result", ""],
        "vars": {
            "meeting_id": "'m-77'",
            "audio": "<Audio 3.2 MB>",
            "api_key": "'sk-live-123'",
            "attempt": 2,
            "url": "'https://api.example.com/v1/transcribe?token=abc&lang=en'",
        },
        "in_app": True,
    }
    return {
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "timestamp": "2026-11-29T05:00:00.000000Z",
        "level": "error",
        "platform": "python",
        "logger": "mina.observability.flask",
        "logentry": {"message": "transcription failed", "params": []},
        "exception": {
            "values": [
                {
                    "type": "TimeoutError",
                    "value": "upstream timed out after 30s",
                    "stacktrace": {"frames": [dict(frame, lineno=n) for n in range(20)]},
                }
            ]
        },
        "breadcrumbs": {
            "values": [
                {
                    "type": "log",
                    "category": "mina.observability.flask",
                    "level": "info",
                    "message": f"meeting.chunk_uploaded chunk={n}",
                    "data": {"meeting_id": "m-77", "chunk": n, "bytes": 32768},
                    "timestamp": "2026-11-29T04:59:59Z",
                }
                for n in range(100)
            ]
        },
        "request": {
            "url": "https://mina.example.com/api/meetings/transcribe",
            "method": "POST",
            "headers": {"Authorization": "Bearer abc", "User-Agent": "curl/8"},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
        },
        "user": {"id": "42", "username": "bob"},
        "tags": {"meeting_id": "m-77"},
        "contexts": {"trace": {"trace_id": "771a43a4192642f0b136d5159a501700"}},
    }


def adversarial_texts() -> list[str]:
    """64k-character strings shaped to make a careless regex quadratic."""
    n = 64 * 1024
    return [
        "a" * n + "@",
        "a." * (n // 2) + "://x@y",
        "x" * n + "_token=abc",
        "1 " * (n // 2),
        "1:" * (n // 2) + "::",
        "token=" + ")" * n,
        '"a":' * (n // 4),
        "x" * (n + 100),
    ]


def adversarial_pairs() -> list[str]:
    """64k-character strings of nested pairs and flags (each name inside the last value)."""
    n = 64 * 1024
    return [
        "password=" * (n // 9),
        "-token=" * (n // 7),
        "password: " * (n // 10),
        "--token " * (n // 8),
        "'--token', " * (n // 11),
    ]


def run(rounds: int) -> dict[str, float]:
    """Return the median microseconds per call of each case over *rounds* rounds."""
    redactor = Redactor()
    events = [typical_event(i) for i in range(rounds * CALLS_PER_ROUND)]
    same = typical_event(0)
    big = sentry_event()
    counter = iter(range(len(events) * 2))
    hostile = adversarial_texts()
    nested = adversarial_pairs()

    def processor_unique() -> None:
        redactor(None, "info", dict(events[next(counter) % len(events)]))

    cases: dict[str, Callable[[], object]] = {
        "processor, typical event (new ids each call)": processor_unique,
        "processor, typical event (repeated)": lambda: redactor(None, "info", dict(same)),
        "dict() copy of the event (baseline)": lambda: dict(same),
        "redact(), typical event (repeated)": lambda: redactor.redact(same),
        "redact_sentry_event, 100 crumbs + 20 frames": lambda: redact_sentry_event(redactor, big),
        "redact_text, 8 hostile 64k strings": lambda: [redactor.redact_text(t) for t in hostile],
        "redact_text, 5 nested pair/flag 64k strings": lambda: [
            redactor.redact_text(t) for t in nested
        ],
    }
    calls_of = {name: CALLS_PER_ROUND for name in cases}
    calls_of["redact_sentry_event, 100 crumbs + 20 frames"] = CALLS_PER_ROUND // 20
    calls_of["redact_text, 8 hostile 64k strings"] = 1
    calls_of["redact_text, 5 nested pair/flag 64k strings"] = 1
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            calls = calls_of[name]
            start = time.perf_counter_ns()
            for _ in range(calls):
                case()
            samples[name].append((time.perf_counter_ns() - start) / calls / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    results = run(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
    width = max(map(len, results))
    print(f"{'case':<{width}}  median us/call")
    for name, micros in results.items():
        print(f"{name:<{width}}  {micros:>10.2f}")
