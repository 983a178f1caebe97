"""A corpus of harmless values typical of Mina, generated reproducibly: none may change.

Over-redaction destroys what operators need (a request id, a path, a meeting's title), so
the redactor is held to leave every one of these alone, as text, under its natural key in
an event, and as the repr Sentry shows for a frame local. `corpus` draws them from fixed
word lists and formats with a fixed seed: the same values on every run and machine.

Report: ``.venv/bin/python -m tests.redaction.harmless`` prints the corpus size per kind
and every value the redactor changes (none, when the suite passes).
"""

from __future__ import annotations

import base64
import datetime
import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from typing import Final
from urllib.parse import quote, urlencode

from mina.redaction import Redactor

__all__ = ["SEED", "SIZE", "changed", "corpus"]

#: The seed and the number of values per kind (25 kinds: 25,000 values).
SEED: Final = 18
SIZE: Final = 1000

_WORDS: Final = [
    "weekly",
    "sync",
    "planning",
    "review",
    "retro",
    "standup",
    "budget",
    "roadmap",
    "design",
    "hiring",
    "onboarding",
    "customer",
    "demo",
    "launch",
    "incident",
    "postmortem",
    "quarterly",
    "board",
    "offsite",
    "interview",
    "feedback",
    "migration",
    "release",
    "security",
    "audit",
    "training",
    "kickoff",
    "brainstorm",
    "workshop",
    "handover",
    "marketing",
    "sales",
    "support",
    "legal",
    "finance",
    "product",
    "engineering",
    "research",
    "analytics",
    "ops",
]
_PEOPLE: Final = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Barbara",
    "Edsger",
    "Margaret",
    "Ken",
    "Dennis",
    "Frances",
]
_SENTENCES: Final = (
    "transcribed {n} chunks in {f}s",
    "retrying upstream after {status} ({n} of 3)",
    "password reset e-mail queued for user {n}",
    "token limit reached: {n} of {m} tokens used",
    "session expired after {n} minutes of inactivity",
    "secret rotation finished for {n} keys in {f}s",
    "auth provider answered {status} in {f} ms",
    "api key count for workspace {n} is {m}",
    "meeting {title!r} moved to {date}",
    "uploaded {n} bytes of audio for meeting {n}",
    "cache hit ratio {f} over {m} lookups",
    "worker {n} booted with pid {m}",
    "connected to db.internal:5432 as mina in {f} ms",
    "{person} joined {title!r} at {time}",
    "the passphrase policy requires {n} characters",
    "signature verified for webhook delivery {n}",
    "credentials loaded from the environment ({n} variables)",
    "cookie consent banner shown {n} times",
)
_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.{m} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "curl/8.{m}.0",
    "python-requests/2.{v}.0",
    "Werkzeug/3.1.{m}",
    "mina-cli/0.{m}.{n} (Python 3.11.{m}; linux)",
    "kube-probe/1.{v}",
)
_SQL: Final = (
    "SELECT id, title, created_at FROM meetings WHERE user_id = ? ORDER BY created_at DESC "
    "LIMIT {n}",
    "INSERT INTO chunks (meeting_id, seq, bytes) VALUES (?, ?, ?)",
    "UPDATE meetings SET title = ?, updated_at = ? WHERE id = ?",
    "DELETE FROM sessions WHERE expires_at < ?",
    "SELECT count(*) FROM api_tokens WHERE user_id = {n} AND revoked_at IS NULL",
    "PRAGMA journal_mode=WAL",
    "SELECT password_hash IS NOT NULL AS has_password FROM users WHERE id = ?",
)
_EXTENSIONS: Final = ("wav", "mp3", "ogg", "json", "txt", "pdf", "csv", "md", "sqlite3", "log")
_MIME: Final = (
    "application/json",
    "application/json; charset=utf-8",
    "audio/wav",
    "audio/mpeg",
    "text/plain; charset=utf-8",
    "multipart/form-data; boundary=----WebKitFormBoundary{h}",
    "application/x-www-form-urlencoded",
)


class _Draw:
    """Random pieces of Mina's values, from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def n(self, hi: int = 10_000) -> int:
        return self.rng.randint(0, hi)

    def hex(self, size: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(size))

    def words(self, lo: int = 1, hi: int = 4) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(lo, hi)))

    def title(self) -> str:
        title = self.words(2, 5).capitalize()
        extra = self.rng.choice(("", " — draft", f" Q{self.rng.randint(1, 4)}", " (v2)", " #3"))
        return title + extra

    def when(self) -> datetime.datetime:
        start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
        return start + datetime.timedelta(seconds=self.n(3 * 365 * 86400), microseconds=self.n())

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


def _kinds(d: _Draw) -> dict[str, tuple[str, Callable[[], str]]]:
    # Each kind: the key it is logged under, and how one value is drawn.
    r = d.rng
    return {
        "int ids": ("user_id", lambda: str(d.n(10**9))),
        "prefixed ids": ("meeting_id", lambda: f"{r.choice(('m', 'mtg', 'chunk', 'req'))}-{d.n()}"),
        "uuids": ("request_id", lambda: str(d.uuid())),
        "uuid hex": ("meeting_id", lambda: d.uuid().hex),
        "trace and span ids": ("trace", lambda: f"{d.hex(32)}-{d.hex(16)}-{r.choice('01')}"),
        "hashes": ("checksum", lambda: d.hex(r.choice((7, 12, 40, 64)))),
        "timestamps": (
            "timestamp",
            lambda: r.choice(
                (
                    d.when().isoformat(),
                    d.when().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    d.when().strftime("%a, %d %b %Y %H:%M:%S GMT"),
                    str(int(d.when().timestamp())),
                    f"{d.n(5000)}.{d.n(999)}ms",
                )
            ),
        ),
        "paths": (
            "path",
            lambda: r.choice(
                (
                    f"/api/meetings/{d.uuid().hex}/transcribe",
                    f"/api/meetings/{d.n()}/chunks/{d.n(99)}",
                    f"/var/lib/mina/audio/{d.uuid()}.wav",
                    f"/app/mina/{r.choice(('api', 'db', 'audio', 'auth'))}.py",
                    f"C:\\Users\\{r.choice(_PEOPLE)}\\Documents\\{d.words(1, 2)}.docx",
                    "/healthz",
                )
            ),
        ),
        "urls": (
            "url",
            lambda: (
                "https://mina.example.com/api/meetings?"
                + urlencode(
                    {
                        "page": d.n(50),
                        "sort": r.choice(("-created_at", "title")),
                        "after": d.when().isoformat(),
                        "q": d.title(),
                    }
                )
            ),
        ),
        "encoded urls": (
            "next",
            lambda: quote(f"/meetings/{d.n()}?title={quote(d.title())}&tab=notes", safe=""),
        ),
        "user agents": (
            "user_agent",
            lambda: r.choice(_AGENTS).format(v=r.randint(20, 130), m=d.n(9), n=d.n(20)),
        ),
        "titles": ("title", d.title),
        "sentences": (
            "message",
            lambda: r.choice(_SENTENCES).format(
                n=d.n(),
                m=d.n(),
                f=round(r.random() * 100, 2),
                status=r.choice((429, 500, 502, 503)),
                title=d.title(),
                date=d.when().date().isoformat(),
                time=d.when().time().isoformat(timespec="minutes"),
                person=r.choice(_PEOPLE),
            ),
        ),
        "sql": ("db.statement", lambda: r.choice(_SQL).format(n=d.n(100))),
        "file names": (
            "filename",
            lambda: (
                f"{d.words(1, 3).replace(' ', r.choice('-_'))}-{d.when().date()}"
                f".{r.choice(_EXTENSIONS)}"
            ),
        ),
        "versions": (
            "version",
            lambda: r.choice(
                (
                    f"{d.n(9)}.{d.n(30)}.{d.n(30)}",
                    f"v{d.n(9)}.{d.n(9)}.0-rc.{d.n(5)}",
                    f"mina@0.{d.n(9)}.{d.n(9)}",
                    f"Python/3.11.{d.n(12)}",
                    f"sentry.python/2.{d.n(50)}.0",
                )
            ),
        ),
        "own addresses": (
            "ip",
            lambda: r.choice(("127.0.0.1", "::1", "0.0.0.0", f"127.0.0.1:{d.n(65535)}")),
        ),
        "content types": ("content_type", lambda: r.choice(_MIME).format(h=d.hex(16))),
        "logfmt": (
            "line",
            lambda: (
                f"chunk={d.n(99)} bytes={d.n(65536)} duration_ms={r.random() * 100:.1f}"
                f" status={r.choice((200, 201, 204))} token_count={d.n(4096)}"
            ),
        ),
        "reprs": (
            "vars",
            lambda: repr(
                {
                    "meeting_id": f"m-{d.n()}",
                    "title": d.title(),
                    "notes": f"{d.words()}\n\t- {d.words()}",
                    "duration_s": round(r.random() * 3600, 1),
                }
            ),
        ),
        "remotes and hosts": (
            "remote",
            lambda: r.choice(
                (
                    f"git@github.com:{r.choice(_PEOPLE).lower()}/{r.choice(_WORDS)}.git",
                    f"https://github.com/{r.choice(_PEOPLE).lower()}/{r.choice(_WORDS)}",
                    f"db.internal:{r.choice((5432, 6379, 3306))}",
                    f"redis://cache.internal:6379/{d.n(15)}",
                )
            ),
        ),
        "headers": (
            "header",
            lambda: r.choice(
                (
                    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                    f"Accept-Language: en-GB,en;q=0.{d.n(9)}",
                    "Cache-Control: no-cache, no-store, must-revalidate",
                    "X-Forwarded-Proto: https",
                    f"X-Forwarded-Host: mina{d.n(9)}.example.com",
                    f"X-Request-ID: {d.uuid()}",
                    f"Content-Length: {d.n(10**6)}",
                    f'ETag: W/"{d.hex(32)}"',
                    f"traceparent: 00-{d.hex(32)}-{d.hex(16)}-01",
                )
            ),
        ),
        "json bodies": (
            "body",
            lambda: json.dumps(
                {
                    "meeting_id": d.uuid().hex,
                    "title": d.title(),
                    "token_count": d.n(4096),
                    "has_password": r.choice((True, False)),
                    "auth_method": r.choice(("password", "sso", "api_token")),
                    "created_at": d.when().isoformat(),
                }
            ),
        ),
        "digests": (
            "integrity",
            lambda: r.choice(
                (
                    "sha256-" + base64.b64encode(r.randbytes(32)).decode(),
                    f"sha1:{d.hex(40)}",
                    f"md5={d.hex(32)}",
                    f"blake2b-{d.hex(64)}",
                )
            ),
        ),
        "random words": (
            "note",
            lambda: (
                "".join(r.choice(string.ascii_lowercase + " ") for _ in range(40)).strip() or "x"
            ),
        ),
    }


def corpus(seed: int = SEED, size: int = SIZE) -> Iterator[tuple[str, str, str]]:
    """Yield (kind, key, value) for *size* values of each kind, drawn with *seed*."""
    draw = _Draw(random.Random(seed))
    for kind, (key, make) in _kinds(draw).items():
        for _ in range(size):
            yield kind, key, make()


def changed(redactor: Redactor, key: str, value: str) -> list[str]:
    """How *redactor* changes *value*: as text, under *key*, as a frame local's repr."""
    out = []
    text = redactor.redact_text(value)
    if text != value:
        out.append(text)
    walked = redactor.redact({key: value})
    if walked != {key: value}:
        out.append(repr(walked))
    shown = repr(value)
    if redactor.redact_text(shown) != shown:
        out.append(redactor.redact_text(shown))
    return out


def _report() -> None:
    redactor = Redactor()
    sizes: dict[str, int] = {}
    bad: list[tuple[str, str, list[str]]] = []
    for kind, key, value in corpus():
        sizes[kind] = sizes.get(kind, 0) + 1
        result = changed(redactor, key, value)
        if result:
            bad.append((kind, value, result))
    for kind, count in sizes.items():
        print(f"{kind:<20} {count:>6}")
    total = sum(sizes.values())
    print(f"{'total':<20} {total:>6}  changed: {len(bad)} ({len(bad) / total:.2%})")
    for kind, value, result in bad:
        print(f"  {kind}: {value!r} -> {result}")


if __name__ == "__main__":
    _report()
