"""Per-call cost of one log call: Mina's pipeline, its peers, and the floor, interleaved.

What is measured
----------------
The *floor* is the least any JSON logger can do for the event: build the same dict (ISO
timestamp, level, logger, event, the 4 bound context keys and the 4 call keys), serialise it
with ``orjson.dumps`` and write it with one ``os.write``. Every other case logs the same
event (``meeting.created`` with the same 4 bound context keys and 4 call keys) and is quoted
as a ratio to the floor measured in the same round.

Output goes to a real file descriptor for every case, floor included: ``os.devnull``
opened once; stdlib handlers, structlog's ``BytesLogger`` and loguru write to it (and
flush, so each line is one ``write`` system call as it is to a pipe in production).

Isolation: structlog, stdlib logging, Sentry and loguru are process-global
-------------------------------------------------------------------------
Cases are set up once, in turn, and then coexist, so rounds can interleave them without
reconfiguring anything inside a timed loop:

- structlog: each case calls ``structlog.configure`` in its ``setup`` and resolves its own
  logger proxy right away. With ``cache_logger_on_first_use`` the proxy keeps the
  processors, wrapper class and output logger of *that* configuration, whatever is
  configured later. (Mina's production modules use cached proxies the same way.)
- stdlib logging: Mina's pipeline owns the root logger (configured by
  `mina.logging_config.configure_logging`, its stdout handler pointed at the devnull
  file). Every peer logs through its own logger name with ``propagate=False`` and its own
  handler, so no record reaches another case's handlers.
- Sentry: each Sentry case has its own client (built by ``sentry_sdk.init`` during its
  setup, then kept) and its own isolation scope (its breadcrumb buffer). ``enter()`` puts
  the case's client on the global scope and its isolation scope in force; cases without
  Sentry run with no client. ``logging.Logger.callHandlers`` is patched by Sentry's
  LoggingIntegration once per process: Sentry cases run with the patch, the others with
  the original, so "stdlib + python-json-logger" pays nothing for Sentry.
- loguru keeps its own handler registry; only loguru calls reach its sink.

Every Sentry client sends to a local `mina.testing.SentryIngest` on 127.0.0.1 through the
SDK's real HTTP transport. Cases that produce events flush the transport after each timed
call (untimed), so the background sender never competes with the next timed call: what is
timed is the cost on the calling thread.

Rounds: each round visits every case once in a shuffled order (``enter``, a few warm-up
calls, a timed batch, ``exit``); the batch size is calibrated once so a batch takes about
``target_ms``. The batch is timed in `SLICES` slices and the fastest slice counts, as
``timeit`` does: on a shared machine a slice can only be slowed down (the process loses
the CPU), never sped up, and a 20 ms batch is preempted far more often than the floor's
calls are. Costly cases (``single``) count the median of their single calls. A case's
ratio is the median over rounds of (its per-call time / the floor's per-call time in the
same round), which cancels the drift of a shared machine. GC stays on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import logging
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import sentry_sdk
import structlog
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.scope import Scope, use_isolation_scope

__all__ = ["CASES", "Case", "Result", "run"]

EVENT = "meeting.created"
#: Bound once per process with structlog.contextvars: the request-wide context.
CONTEXT: dict[str, Any] = {
    "request_id": "5f0c1d2e3a4b4c5d9e8f7a6b5c4d3e2f",
    "method": "POST",
    "path": "/api/meetings",
    "user_id": 7,
}
#: The call's own keys.
CALL: dict[str, Any] = {
    "meeting_id": "9b2e4c1a-0d3f-4e5a-8b7c-6d5e4f3a2b1c",
    "title": "Standup",
    "seats": 4,
    "duration_ms": 12.5,
}

_ORIGINAL_CALL_HANDLERS = logging.Logger.callHandlers


def _out() -> io.TextIOWrapper:
    # A text stream on a real fd; every handler flushes after each record (one write).
    return open(os.devnull, "w", encoding="utf-8")


@dataclass
class Case:
    """One thing to time. ``call`` is one log call; ``per_call`` may time it differently."""

    name: str
    label: str
    setup: Callable[[Env], Callable[[], object]]
    #: Sentry client and isolation scope to run under (None: no Sentry, unpatched stdlib).
    sentry: bool = False
    #: Time each call alone and run ``between`` (untimed) after it: for costly calls.
    single: bool = False
    group: str = "mina"
    call: Callable[[], object] | None = None
    client: Any = None
    scope: Scope | None = None
    before: Callable[[], object] | None = None
    between: Callable[[], object] | None = None
    batch: int = 1


@dataclass
class Env:
    """What all cases share: the output file, the local ingest's DSN, the Sentry patch."""

    dsn: str
    out: io.TextIOWrapper
    fd: int
    patched_call_handlers: Any = None
    clients: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    name: str
    label: str
    group: str
    per_call_us: list[float]
    ratios: list[float]

    def summary(self) -> dict[str, Any]:
        q = _quartiles(self.per_call_us)
        r = _quartiles(self.ratios)
        return {
            "label": self.label,
            "group": self.group,
            "median_us": q[1],
            "p25_us": q[0],
            "p75_us": q[2],
            "ratio": r[1],
            "ratio_p25": r[0],
            "ratio_p75": r[2],
            "rounds": len(self.per_call_us),
        }


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v, v
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


# --- Sentry plumbing --------------------------------------------------------------------------


def _new_client(env: Env, key: str, **options: Any) -> Any:
    """Build a Sentry client with *options* and leave the global scope without a client."""
    options.setdefault("dsn", env.dsn)
    options.setdefault("traces_sample_rate", 0.0)
    sentry_sdk.init(**options)
    client = sentry_sdk.get_client()
    if env.patched_call_handlers is None:
        env.patched_call_handlers = logging.Logger.callHandlers
    env.clients[key] = client
    return client


@contextlib.contextmanager
def _entered(case: Case, env: Env) -> Iterator[None]:
    global_scope = sentry_sdk.get_global_scope()
    if case.sentry:
        global_scope.set_client(case.client)
        logging.Logger.callHandlers = env.patched_call_handlers  # type: ignore[method-assign]
        assert case.scope is not None
        with use_isolation_scope(case.scope):
            yield
    else:
        global_scope.set_client(None)
        logging.Logger.callHandlers = _ORIGINAL_CALL_HANDLERS  # type: ignore[method-assign]
        yield


# --- the cases -------------------------------------------------------------------------------


def _floor(env: Env) -> Callable[[], object]:
    fd = env.fd
    dumps = orjson.dumps
    now = dt.datetime.now
    utc = dt.UTC
    context, call = CONTEXT, CALL

    def floor() -> None:
        line = {
            "timestamp": now(utc).isoformat(),
            "level": "info",
            "logger": "bench.floor",
            "event": EVENT,
            **context,
            **call,
        }
        os.write(fd, dumps(line) + b"\n")

    return floor


def _mina(env: Env) -> tuple[Any, Any]:
    """Configure Mina's pipeline (root logger, Sentry client) once; return (client, redactor).

    Sentry starts as the app starts it (`init_sentry`): Mina's options, the outbox
    transport (its directory a temporary one) and error events finished off the calling
    thread.
    """
    if "mina" in env.clients:
        return env.clients["mina"], env.clients["mina.redactor"]
    from mina.logging_config import configure_logging
    from mina.observability.sentry import init_sentry
    from mina.settings import Settings

    settings = replace(
        Settings.from_env({}),
        sentry_dsn=env.dsn,
        sentry_outbox=Path(tempfile.mkdtemp(prefix="mina-bench-outbox-")),
        traces_sample_rate=0.0,
        profiles_sample_rate=0.0,
        # Every ERROR call is to become an event: storm control would drop repeats.
        storm_budget=0,
    )
    redactor = configure_logging(settings, force=True)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(env.out)
    init_sentry(settings, redactor)
    client = sentry_sdk.get_client()
    if env.patched_call_handlers is None:
        env.patched_call_handlers = logging.Logger.callHandlers
    env.clients["mina"] = client
    env.clients["mina.redactor"] = redactor
    sentry_sdk.get_global_scope().set_client(None)
    return client, redactor


def _mina_logger(env: Env, name: str, *, proxy: bool = True) -> Any:
    """A Mina logger as users write it: ``structlog.get_logger(name)`` (*proxy*), or
    ``mina.get_logger(name)`` as Mina's own modules do."""
    _mina(env)
    from mina.observability import pipeline

    # Back to Mina's structlog configuration and stdlib logger class, which a peer's
    # setup replaced, exactly as configure_logging leaves them.
    factory = structlog.stdlib.LoggerFactory(ignore_frame_names=[pipeline.__name__])
    logging.setLoggerClass(pipeline.AppCallerLogger)
    structlog.configure(
        processors=pipeline.PIPELINE.processors,
        wrapper_class=pipeline.MinaBoundLogger,
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger(name) if proxy else pipeline.get_logger(name)
    for method in ("debug", "info", "error"):
        getattr(log, method)  # resolved now, under Mina's configuration, and kept
    return log


def _mina_info(env: Env) -> Callable[[], object]:
    log = _mina_logger(env, "mina.bench.info")
    call = CALL
    return lambda: log.info(EVENT, **call)


def _mina_debug(env: Env) -> Callable[[], object]:
    log = _mina_logger(env, "mina.bench.debug")
    call = CALL
    return lambda: log.debug(EVENT, **call)


def _mina_info_module(env: Env) -> Callable[[], object]:
    log = _mina_logger(env, "mina.bench.info_module", proxy=False)
    call = CALL
    return lambda: log.info(EVENT, **call)


def _mina_debug_module(env: Env) -> Callable[[], object]:
    log = _mina_logger(env, "mina.bench.debug_module", proxy=False)
    call = CALL
    return lambda: log.debug(EVENT, **call)


def _mina_error(env: Env) -> Callable[[], object]:
    log = _mina_logger(env, "mina.bench.error")
    call = CALL
    return lambda: log.error("invoice.failed", **call)


def _fill_breadcrumbs(env: Env) -> None:
    # 100 breadcrumbs as the pipeline makes them: INFO calls with the call's keys.
    log = _mina_logger(env, "mina.bench.fill")
    for i in range(120):
        log.info("step.done", step=i, **CALL)


def _naive(env: Env) -> Callable[[], object]:
    """The design card, unoptimised: stdlib BoundLogger, render_to_log_kwargs, pjl JsonFormatter,
    Sentry's LoggingIntegration with its defaults (Sentry Logs handler included)."""
    from pythonjsonlogger.json import JsonFormatter

    _new_client(env, "naive", integrations=[LoggingIntegration(level=logging.INFO)])
    handler = logging.StreamHandler(env.out)
    handler.setFormatter(
        JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True)
    )
    stdlib = logging.getLogger("naive.bench")
    stdlib.handlers[:] = [handler]
    stdlib.propagate = False
    stdlib.setLevel(logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.render_to_log_kwargs,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("naive.bench")
    log.bind()
    call = CALL
    return lambda: log.info(EVENT, **call)


def _structlog_native(env: Env) -> Callable[[], object]:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(env.out.buffer),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("structlog.native")
    log.bind()
    call = CALL
    return lambda: log.info(EVENT, **call)


def _structlog_sentry(env: Env) -> Callable[[], object]:
    from structlog_sentry import SentryProcessor

    # structlog-sentry's documented set-up: Sentry's logging integration off, the processor
    # adds the breadcrumb (INFO+) and the events (ERROR+).
    _new_client(
        env, "structlog-sentry", integrations=[LoggingIntegration(level=None, event_level=None)]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            SentryProcessor(event_level=logging.ERROR, level=logging.INFO),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(env.out.buffer),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("structlog.sentry")
    log.bind()
    call = CALL
    return lambda: log.info(EVENT, **call)


def _stdlib(formatter: logging.Formatter, name: str, env: Env) -> Callable[[], object]:
    handler = logging.StreamHandler(env.out)
    handler.setFormatter(formatter)
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    extra = {**CONTEXT, **CALL}
    return lambda: log.info(EVENT, extra=extra)


_PJL_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _stdlib_pjl(env: Env) -> Callable[[], object]:
    from pythonjsonlogger.json import JsonFormatter

    return _stdlib(JsonFormatter(_PJL_FORMAT, timestamp=True), "peer.pjl", env)


def _stdlib_pjl_orjson(env: Env) -> Callable[[], object]:
    from pythonjsonlogger.orjson import OrjsonFormatter

    return _stdlib(OrjsonFormatter(_PJL_FORMAT, timestamp=True), "peer.pjl_orjson", env)


def _loguru(env: Env) -> Callable[[], object]:
    from loguru import logger

    with contextlib.suppress(ValueError):
        logger.remove(0)  # the default stderr handler
    logger.add(env.out, serialize=True, level="INFO", enqueue=False, catch=True)
    log = logger.bind(**CONTEXT)
    call = CALL
    return lambda: log.info(EVENT, **call)


def _redactor_case(size: str) -> Callable[[Env], Callable[[], object]]:
    def setup(env: Env) -> Callable[[], object]:
        _, redactor = _mina(env)
        data = typical_event() if size == "typical" else large_event()
        return lambda: redactor.redact(data)

    return setup


def typical_event() -> dict[str, Any]:
    """An event dict as the redactor sees it in the chain: head, context, call keys."""
    return {
        "timestamp": "2026-11-29T10:00:01.250113Z",
        "level": "info",
        "logger": "mina.api",
        "event": EVENT,
        **CONTEXT,
        **CALL,
    }


def large_event() -> dict[str, Any]:
    """A large payload: nested request data, lists of records, some text to scan."""
    rows = [
        {"id": i, "title": f"Meeting {i}", "notes": "discussed budget and next steps " * 4}
        for i in range(50)
    ]
    return {
        **typical_event(),
        "request": {"headers": {"User-Agent": "curl/8", "Accept": "*/*"}, "query": {"q": "x"}},
        "rows": rows,
        "body": "lorem ipsum dolor sit amet " * 200,
    }


CASES: list[Case] = [
    Case("floor", "floor: dict + orjson.dumps + os.write", _floor, group="floor"),
    Case(
        "mina.info",
        "Mina INFO (stdout JSON + breadcrumb), structlog.get_logger",
        _mina_info,
        sentry=True,
    ),
    Case("mina.debug", "Mina DEBUG, filtered out, structlog.get_logger", _mina_debug, sentry=True),
    Case(
        "mina.info.module",
        "Mina INFO (stdout JSON + breadcrumb), mina.get_logger",
        _mina_info_module,
        sentry=True,
    ),
    Case(
        "mina.debug.module",
        "Mina DEBUG, filtered out, mina.get_logger",
        _mina_debug_module,
        sentry=True,
    ),
    Case(
        "mina.error.empty",
        "Mina ERROR -> Sentry event, 0 breadcrumbs",
        _mina_error,
        sentry=True,
        single=True,
    ),
    Case(
        "mina.error.full",
        "Mina ERROR -> Sentry event, 100 breadcrumbs",
        _mina_error,
        sentry=True,
        single=True,
    ),
    Case("redactor.typical", "Mina redactor, typical event", _redactor_case("typical")),
    Case("redactor.large", "Mina redactor, large payload", _redactor_case("large")),
    Case(
        "peer.naive",
        "naive design card (stdlib BoundLogger, pjl, Sentry defaults)",
        _naive,
        sentry=True,
        group="peer",
    ),
    Case("peer.structlog", "structlog native + orjson", _structlog_native, group="peer"),
    Case(
        "peer.structlog_sentry",
        "structlog-sentry on native structlog",
        _structlog_sentry,
        sentry=True,
        group="peer",
    ),
    Case("peer.stdlib_pjl", "stdlib + python-json-logger", _stdlib_pjl, group="peer"),
    Case(
        "peer.stdlib_pjl_orjson",
        "stdlib + python-json-logger OrjsonFormatter",
        _stdlib_pjl_orjson,
        group="peer",
    ),
    Case("peer.loguru", "loguru serialize=True", _loguru, group="peer"),
]


def _client_of(case: Case, env: Env) -> Any:
    key = {
        "peer.naive": "naive",
        "peer.structlog_sentry": "structlog-sentry",
    }.get(case.name, "mina")
    return env.clients[key]


def _prepare(cases: list[Case], env: Env) -> None:
    for case in cases:
        case.call = case.setup(env)
        sentry_sdk.get_global_scope().set_client(None)
    for case in cases:
        if not case.sentry:
            continue
        case.client = _client_of(case, env)
        case.scope = Scope(ty="isolation")
        if case.name == "mina.error.full":
            with _entered(case, env):
                _fill_breadcrumbs(env)
        if case.name == "mina.error.empty":
            scope = case.scope
            case.before = scope.clear_breadcrumbs
        if case.single:
            client = case.client
            case.between = lambda client=client: client.flush(timeout=5)


#: Slices a round's batch is timed in; the fastest counts (see the module docstring).
SLICES = 5


def _time_batch(call: Callable[[], object], n: int) -> float:
    clock = time.perf_counter_ns
    size = max(1, n // SLICES)
    best = float("inf")
    for _ in range(SLICES):
        start = clock()
        for _ in range(size):
            call()
        best = min(best, (clock() - start) / size)
    return best


def _time_single(case: Case, n: int) -> float:
    clock = time.perf_counter_ns
    call = case.call
    assert call is not None
    times = []
    for _ in range(n):
        if case.before is not None:
            case.before()
        start = clock()
        call()
        times.append(clock() - start)
        if case.between is not None:
            case.between()
    return statistics.median(times)


def _measure(case: Case, env: Env, n: int) -> float:
    assert case.call is not None
    with _entered(case, env):
        for _ in range(3):  # warm-up
            if case.before is not None:
                case.before()
            case.call()
            if case.between is not None:
                case.between()
        if case.single:
            return _time_single(case, n)
        return _time_batch(case.call, n)


def _calibrate(case: Case, env: Env, target_ms: float) -> int:
    if case.single:
        return 0
    n = 16
    while True:
        ns = _measure(case, env, n) * n
        if ns >= target_ms * 1e6 / 4 or n >= 1 << 20:
            return max(16, int(n * target_ms * 1e6 / max(ns, 1)))
        n *= 4


def run(
    rounds: int = 15,
    *,
    only: str | None = None,
    target_ms: float = 20.0,
    single_calls: int = 8,
    dsn: str,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the per-call cases; return ``{name: summary}`` (see `Result.summary`)."""
    cases = [c for c in CASES if c.name == "floor" or only is None or only in c.name]
    out = _out()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**CONTEXT)
    env = Env(dsn=dsn, out=out, fd=out.fileno())
    try:
        _prepare(cases, env)
        for case in cases:
            case.batch = single_calls if case.single else _calibrate(case, env, target_ms)
        per_call: dict[str, list[float]] = {c.name: [] for c in cases}
        ratios: dict[str, list[float]] = {c.name: [] for c in cases}
        rng = random.Random(seed)
        for index in range(rounds):
            order = cases[:]
            rng.shuffle(order)
            this: dict[str, float] = {}
            for case in order:
                this[case.name] = _measure(case, env, case.batch) / 1000.0
            for name, us in this.items():
                per_call[name].append(us)
                ratios[name].append(us / this["floor"])
            if progress is not None:
                progress(f"round {index + 1}/{rounds}")
        return {
            c.name: Result(c.name, c.label, c.group, per_call[c.name], ratios[c.name]).summary()
            for c in cases
        }
    finally:
        sentry_sdk.get_global_scope().set_client(None)
        logging.Logger.callHandlers = (  # type: ignore[method-assign]
            env.patched_call_handlers or _ORIGINAL_CALL_HANDLERS
        )
        for client in env.clients.values():
            with contextlib.suppress(Exception):
                if hasattr(client, "close"):
                    client.close(timeout=2)
        gc.collect()
