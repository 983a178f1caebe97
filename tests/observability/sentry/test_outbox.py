"""The on-disk outbox: atomic writes, one owner per envelope across processes, the order
things are sent and dropped in, and resuming what a dead process left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mina.observability.sentry import outbox as outbox_module
from mina.observability.sentry.outbox import Outbox

# Claims every pending envelope it can once the go file exists; prints the ids it got.
# Loads outbox.py by path: the store imports nothing of Mina, and four interpreters
# importing all of Mina at once would take seconds.
_CLAIMER = """
import importlib.util, json, os, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("outbox", sys.argv[3])
module = importlib.util.module_from_spec(spec)
sys.modules["outbox"] = module
spec.loader.exec_module(module)
box = module.Outbox(Path(sys.argv[1]), 10_000, 10**9)
print("ready", flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.001)
claimed = []
for entry in box.pending():
    claim = box.claim(entry)
    if claim is not None:
        claimed.append(claim.id)
        box.done(claim)
print(json.dumps(claimed))
"""


def test_put_is_visible_only_complete_and_read_back_byte_for_byte(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "box", 10, 10**6)
    data = b'{"event_id":"1"}\n{"type":"event"}\n{}\n'

    id_ = box.put(data, "error")
    [entry] = box.entries()

    assert (id_, "pending", "error", len(data)) == (entry.id, entry.state, entry.kind, entry.size)
    assert data == box.read(entry)
    assert [] == os.listdir(tmp_path / "box" / "tmp")


def test_sync_fsyncs_what_this_process_put_that_is_still_pending(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    box.put(b"a", "error")
    box.put(b"b", "error")
    claim = box.claim(box.pending()[0])
    assert claim is not None
    box.done(claim)

    assert (1, 0) == (box.sync(), box.sync())


def test_every_envelope_is_claimed_by_exactly_one_of_four_processes(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 10_000, 10**9)
    ids = {box.put(b"x" * 100, "error") for _ in range(400)}
    go = tmp_path / "go"
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(tmp_path), str(go), outbox_module.__file__],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for claimer in claimers:
        assert claimer.stdout is not None
        assert "ready\n" == claimer.stdout.readline()
    go.touch()
    claimed = []
    for claimer in claimers:
        out, _ = claimer.communicate(timeout=30)
        claimed += json.loads(out)

    assert (len(ids), ids) == (len(claimed), set(claimed))
    assert [] == box.entries()


def test_send_order_is_reports_then_errors_then_the_rest_each_oldest_first(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    other1 = box.put(b"t1", "other")
    error1 = box.put(b"e1", "error")
    report = box.put(b"c1", "report")
    other2 = box.put(b"t2", "other")
    error2 = box.put(b"e2", "error")

    assert [report, error1, error2, other1, other2] == [e.id for e in box.pending()]


@settings(max_examples=30, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["error", "other", "report"]), min_size=1, max_size=30),
    max_envelopes=st.integers(1, 30),
)
def test_bounds_drop_oldest_other_first_then_errors_then_reports(
    kinds: list[str], max_envelopes: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        box = Outbox(Path(directory), max_envelopes, 10**6)
        ids = [box.put(b"x", kind) for kind in kinds]  # type: ignore[arg-type]
        rank = {"other": 0, "error": 1, "report": 2}
        expected_drops = sorted(ids, key=lambda id_: (rank[kinds[ids.index(id_)]], ids.index(id_)))[
            : max(len(ids) - max_envelopes, 0)
        ]

        claims = box.over_bounds()
        for claim in claims:
            box.done(claim)

        assert expected_drops == [claim.id for claim in claims]
        assert sorted(set(ids) - set(expected_drops)) == sorted(e.id for e in box.entries())


def test_bytes_bound_drops_until_the_outbox_fits(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 250)
    ids = [box.put(b"x" * 100, "error") for _ in range(4)]

    dropped = [claim.id for claim in box.over_bounds()]

    assert ids[:2] == dropped


def test_claims_of_a_dead_process_go_back_to_pending(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    id_ = box.put(b"data", "error")
    # A real process claims the envelope and exits without sending it.
    claimer = _CLAIMER.replace("box.done(claim)", "pass")  # claims, never sends
    (tmp_path / "go").touch()
    subprocess.run(
        [
            sys.executable,
            "-c",
            claimer,
            str(tmp_path),
            str(tmp_path / "go"),
            outbox_module.__file__,
        ],
        check=True,
        timeout=30,
        capture_output=True,
    )
    [claimed] = box.entries()

    recovered = box.recover()

    assert ("sending", 1) == (claimed.state, recovered)
    assert [(id_, "pending")] == [(e.id, e.state) for e in box.entries()]


def test_own_live_claims_stay_and_a_same_pid_leftover_is_recovered(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    mine = box.claim(box.pending()[0]) if box.put(b"a", "error") else None
    leftover_id = box.put(b"b", "error")
    # What an earlier process with this same pid left behind (containers reuse pids).
    (tmp_path / "pending" / f"{leftover_id}.envelope").rename(
        tmp_path / "sending" / f"{leftover_id}.{os.getpid()}.1"
    )

    assert 1 == box.recover()
    assert mine is not None
    assert [(mine.id, "sending"), (leftover_id, "pending")] == [
        (e.id, e.state) for e in box.entries()
    ]


def test_purge_deletes_pending_envelopes_only(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    box.put(b"a", "error")
    box.put(b"b", "other")
    claim = box.claim(box.pending()[0])

    assert 1 == box.purge()
    assert claim is not None
    assert [claim.id] == [e.id for e in box.entries()]


def test_recover_never_takes_back_a_claim_this_process_makes_meanwhile(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 10_000, 10**9)
    for _ in range(300):
        box.put(b"x", "error")
    stop = threading.Event()
    recovered = []

    def recover() -> None:
        while not stop.is_set():
            recovered.append(box.recover())

    thread = threading.Thread(target=recover)
    thread.start()
    claims = [box.claim(entry) for entry in box.pending()]
    stop.set()
    thread.join(timeout=10)

    assert 0 == sum(recovered)
    assert (300, []) == (len([c for c in claims if c is not None]), box.pending())
