"""mina.jobs.carry: a job carries only registered context keys, redacted, and the trace."""

from __future__ import annotations

import json
import string
from typing import Any

import sentry_sdk
from hypothesis import given
from hypothesis import strategies as st

from mina.jobs import carry
from mina.observability import context
from mina.observability.schema import CONTEXT_ORDER
from mina.redaction import Redactor
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

REDACTOR = Redactor()
TRACE = "771a43a4192642f0b136d5159a501700-b8c1e0b5a2f3d4c6-1"

canaries = st.text(string.ascii_letters + string.digits, min_size=16, max_size=40).map(
    lambda s: "Cy" + s
)
#: How a secret sits inside a value the redactor must recognise.
planted = st.sampled_from(
    [
        "Bearer {}",
        "password={}",
        "https://mina:{}@db.internal/mina",
        "token={}",
        "retrying with api_key={} now",
    ]
)
keys = st.one_of(st.sampled_from(CONTEXT_ORDER), st.text(max_size=12))
values = st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.none(), st.floats())


@given(st.dictionaries(keys, values, max_size=16), st.dictionaries(st.text(), values))
def test_only_registered_keys_of_their_type_travel(
    ctx: dict[str, Any], junk: dict[str, Any]
) -> None:
    headers = carry.encode({**junk, **ctx}, {}, REDACTOR)

    carried = json.loads(headers.get(carry.CONTEXT_HEADER, "{}"))
    assert set() == set(carried) - carry.CARRIED_KEYS
    assert carried == carry.decode(headers, REDACTOR).context
    for name, value in carried.items():
        expected_types = (int, str) if name == "user_id" else (str,)
        assert isinstance(value, expected_types) and not isinstance(value, bool)


def test_request_fields_trace_ids_and_free_bindings_stay_behind() -> None:
    ctx = {
        "request_id": "req-1",
        "method": "POST",
        "path": "/api/meetings/m-1/chunks",
        "route": "/api/meetings/<meeting_id>/chunks",
        "user_id": 7,
        "username": "ada",
        "meeting_id": "m-1",
        "trace_id": "771a43a4192642f0b136d5159a501700",
        "span_id": "b8c1e0b5a2f3d4c6",
        "user_agent": "curl/8",
        "client_ip": "203.0.113.9",
        "user_email": "ada@example.com",
        "room_code": "1234",
    }

    headers = carry.encode(ctx, {}, REDACTOR)

    assert {
        carry.CONTEXT_HEADER: '{"meeting_id":"m-1","request_id":"req-1",'
        '"route":"/api/meetings/<meeting_id>/chunks","user_id":7,"username":"ada"}'
    } == headers


def test_personal_keys_travel_only_with_consent() -> None:
    ctx = {"user_id": 7, "user_email": "ada@example.com"}

    without = carry.decode(carry.encode(ctx, {}, REDACTOR), REDACTOR).context
    consented = Redactor(send_pii=True)
    with_pii = carry.decode(carry.encode(ctx, {}, consented), consented).context

    assert {"user_id": 7} == without
    assert {"user_id": 7, "user_email": "ada@example.com"} == with_pii
    # A worker without consent drops what a consenting producer sent.
    assert {"user_id": 7} == carry.decode(carry.encode(ctx, {}, consented), REDACTOR).context


@given(canaries, planted, st.sampled_from(sorted(carry.CARRIED_KEYS - {"user_email"})))
def test_a_planted_secret_never_reaches_the_headers(canary: str, shape: str, key: str) -> None:
    secret = shape.format(canary)
    ctx = {key: secret, "password": canary, "api_key": canary}
    trace = {
        carry.TRACE_HEADER: TRACE,
        carry.BAGGAGE_HEADER: f"sentry-release={secret.replace('=', '%3D')},other={canary}",
    }

    headers = carry.encode(ctx, trace, REDACTOR)

    assert canary not in json.dumps(headers)
    assert canary not in repr(carry.decode(headers, REDACTOR))


@given(canaries, planted)
def test_a_forged_message_is_checked_again_by_the_worker(canary: str, shape: str) -> None:
    # Anyone who can write to the broker can write headers: the worker filters and redacts.
    forged = {
        carry.CONTEXT_HEADER: json.dumps(
            {"request_id": shape.format(canary), "secret": canary, "user_id": True}
        ),
        carry.TRACE_HEADER: f"{canary}-{canary}-1",
    }

    carried = carry.decode(forged, REDACTOR)

    assert canary not in repr(carried)
    assert {"request_id"} == set(carried.context)
    assert {} == carried.trace


@given(st.dictionaries(st.text(), st.one_of(values, st.lists(values), st.text().map(str.strip))))
def test_decode_never_raises_on_anything(headers: dict[str, Any]) -> None:
    carried = carry.decode(headers, REDACTOR)

    assert set() == set(carried.context) - carry.CARRIED_KEYS
    assert set() == set(carried.trace) - {carry.TRACE_HEADER, carry.BAGGAGE_HEADER}


def test_only_sentry_baggage_travels() -> None:
    trace = {
        carry.TRACE_HEADER: TRACE,
        carry.BAGGAGE_HEADER: "sentry-trace_id=771a43a4192642f0b136d5159a501700, "
        "vendor-session=abc, sentry-sampled=true;prop=1",
    }

    carried = carry.decode(carry.encode({}, trace, REDACTOR), REDACTOR)

    assert {
        carry.TRACE_HEADER: TRACE,
        carry.BAGGAGE_HEADER: "sentry-trace_id=771a43a4192642f0b136d5159a501700,"
        "sentry-sampled=true",
    } == carried.trace


def test_capture_carries_the_request_and_its_trace_into_the_job(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=1.0)
    with sentry_sdk.isolation_scope():
        context.bind_request(request_id="req-9", method="POST", path="/api/x")
        context.bind_user(7, "ada")
        context.bind_meeting("m-1")
        context.bind(room_code="1234")
        with sentry_sdk.start_transaction(name="POST /api/x") as request:
            headers = carry.capture()

    with sentry_sdk.isolation_scope():
        carried = carry.decode(headers, REDACTOR)
        job = sentry_sdk.continue_trace(carried.trace, op="task", name="chunk")
        with sentry_sdk.start_transaction(job):
            pass
    sentry_sdk.flush()

    assert {"request_id": "req-9", "user_id": 7, "username": "ada", "meeting_id": "m-1"} == (
        carried.context
    )
    by_name = {t["transaction"]: t for t in sentry_ingest.wait_for_transactions(2)}
    job_trace = by_name["chunk"]["contexts"]["trace"]
    assert (request.trace_id, request.span_id) == (
        job_trace["trace_id"],
        job_trace["parent_span_id"],
    )
