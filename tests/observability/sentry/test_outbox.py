"""The on-disk outbox: atomic writes, one owner per envelope across processes, the order
things are sent and dropped in, and resuming what a dead process left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import freezegun
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


def _dead_pid() -> int:
    """The id of a process that has exited (and was reaped)."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(process.stdout)


def test_recover_returns_every_abandoned_claim_whatever_else_is_in_the_directory(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    ids = [box.put(b"x", "error") for _ in range(20)]
    dead = _dead_pid()
    # Claims of a dead process, between files no claim is named like (an editor's backup,
    # a copy an operator made) and claims this process holds: every kind of entry that the
    # scan passes over comes before some abandoned claim, whatever order it lists them in.
    held = [box.claim(entry) for entry in box.pending()[:5]]
    for id_ in ids[5:]:
        (tmp_path / "pending" / f"{id_}.envelope").rename(
            tmp_path / "sending" / f"{id_}.{dead}.{int(time.time())}"
        )
    for i in range(10):
        (tmp_path / "sending" / f"notes-{i}.txt").write_text("not an envelope")

    recovered = box.recover()

    assert 15 == recovered
    assert sorted(ids[5:]) == [e.id for e in box.pending()]
    assert sorted(c.id for c in held if c is not None) == sorted(
        e.id for e in box.entries() if e.state == "sending"
    )


def test_stray_files_never_hide_envelopes(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    ids = [box.put(b"x", "error") for _ in range(10)]
    claimed = box.claim(box.pending()[0])
    for i in range(10):
        (tmp_path / "pending" / f"stray-{i}.envelope").write_text("?")
        (tmp_path / "sending" / f"stray-{i}").write_text("?")

    assert sorted(ids) == [e.id for e in box.entries()]
    assert ids[1:] == [e.id for e in box.pending()]
    assert claimed is not None and claimed.id == box.find(ids[0]).id  # type: ignore[union-attr]
    assert (10, 10) == box.depth()


def test_a_claim_older_than_the_stale_bound_goes_back_even_if_its_process_lives(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    fresh, stale = box.put(b"fresh", "error"), box.put(b"stale", "error")
    parent = os.getppid()  # alive, and not this process
    now = int(time.time())
    for id_, at in ((fresh, now), (stale, now - int(outbox_module.STALE_CLAIM_SECONDS) - 5)):
        (tmp_path / "pending" / f"{id_}.envelope").rename(
            tmp_path / "sending" / f"{id_}.{parent}.{at}"
        )

    assert 1 == box.recover()
    assert [(fresh, "sending"), (stale, "pending")] == [(e.id, e.state) for e in box.entries()]


def test_recover_deletes_abandoned_temporary_files_only(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    box.put(b"x", "error")  # makes the directories
    old, new = tmp_path / "tmp" / "old.envelope", tmp_path / "tmp" / "new.envelope"
    old.write_bytes(b"half an envelope")
    new.write_bytes(b"being written")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))

    box.recover()

    assert ["new.envelope"] == os.listdir(tmp_path / "tmp")


def test_an_outbox_never_written_to_is_empty_and_recovers_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "never", 100, 10**6)

    assert ([], [], (0, 0), 0, 0, 0) == (
        box.entries(),
        box.pending(),
        box.depth(),
        box.recover(),
        box.purge(),
        box.sync(),
    )
    assert not (tmp_path / "never").exists()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_putting_and_syncing_many_envelopes_leaks_no_descriptor(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 10_000, 10**9)
    box.put(b"warm-up", "error")
    box.sync()
    before = _open_descriptors()

    for i in range(300):
        box.put(b"x" * i, "error")
        if i % 10 == 0:
            box.sync()
    box.sync()

    # Other threads of the test process may hold a few meanwhile; one per envelope is 300.
    assert _open_descriptors() - before < 30


def test_put_fails_with_outbox_full_and_leaves_no_file_when_the_directory_is_unusable(
    tmp_path: Path,
) -> None:
    (tmp_path / "box").write_text("a file where the directory should be")
    box = Outbox(tmp_path / "box", 100, 10**6)

    try:
        box.put(b"x", "error")
    except outbox_module.OutboxFull as exc:
        assert "Error" in str(exc)  # the OSError's type names the cause
    else:
        raise AssertionError("put() succeeded without a directory")
    assert "a file where the directory should be" == (tmp_path / "box").read_text()


def test_the_bounds_hold_between_scans_for_what_was_put_since(tmp_path: Path) -> None:
    """Right after a scan, what is put counts towards the bounds without waiting for the
    next scan: a burst fills the outbox no further than its bounds."""
    box = Outbox(tmp_path, 1_000, 1_000)
    ids = [box.put(b"x" * 100, "other")]
    assert [] == box.over_bounds()  # a scan, well under the bounds

    ids += [box.put(b"x" * 100, "other") for _ in range(14)]
    claims = box.over_bounds()
    for claim in claims:
        box.done(claim)

    assert ids[:5] == [claim.id for claim in claims]  # 1,500 bytes down to 1,000
    assert (10, 1_000) == box.depth()


def test_the_count_bound_holds_between_scans_for_what_was_put_since(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 10, 10**9)
    box.put(b"x", "other")
    assert [] == box.over_bounds()

    for _ in range(14):
        box.put(b"x", "other")
    claims = box.over_bounds()
    for claim in claims:
        box.done(claim)

    assert (5, 10) == (len(claims), box.depth()[0])


def test_envelopes_being_sent_count_towards_the_bounds_but_are_never_dropped(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path, 3, 10**6)
    ids = [box.put(b"x", "other") for _ in range(5)]
    sending = [box.claim(entry) for entry in box.pending()[:2]]

    dropped = [claim.id for claim in box.over_bounds()]

    assert ids[2:4] == dropped
    assert [c.id for c in sending if c is not None] == ids[:2]


def test_bounds_that_fit_exactly_drop_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 4, 400)
    for _ in range(4):
        box.put(b"x" * 100, "error")

    assert ([], (4, 400)) == (box.over_bounds(), box.depth())


def test_a_released_claim_is_sent_again_in_its_place(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    first, second = box.put(b"first", "error"), box.put(b"second", "error")
    claim = box.claim(box.pending()[0])
    assert claim is not None and [second] == [e.id for e in box.pending()]

    box.release(claim)

    assert [first, second] == [e.id for e in box.pending()]
    assert b"first" == box.read(box.pending()[0])
    assert box.claim(box.pending()[0]) is not None


def test_a_claim_that_lost_the_race_is_none_and_changes_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    box.put(b"x", "error")
    [entry] = box.pending()
    first = box.claim(entry)

    second = box.claim(entry)

    assert first is not None and second is None
    assert [(entry.id, "sending")] == [(e.id, e.state) for e in box.entries()]
    assert 0 == box.recover()  # the winning claim is still this process's own


def test_entries_know_their_kind_and_when_they_were_written(tmp_path: Path) -> None:
    box = Outbox(tmp_path, 100, 10**6)
    before = time.time()
    box.put(b"r", "report")
    box.put(b"e", "error")
    box.put(b"o", "other")
    after = time.time()

    entries = box.pending()

    assert ["report", "error", "other"] == [e.kind for e in entries]
    assert all(before - 0.01 <= e.created <= after + 0.01 for e in entries)
    claims = [box.claim(e) for e in entries]
    assert ["report", "error", "other"] == [c.kind for c in claims if c is not None]


def test_claims_made_and_finished_leave_nothing_behind_in_memory(tmp_path: Path) -> None:
    """A process sends for months: a claim it has finished with (sent, dropped or put back)
    or failed to make must not stay remembered."""
    box = Outbox(tmp_path, 10_000, 10**9)

    def cycle(n: int) -> None:
        for i in range(n):
            box.put(b"x", "error")
            [entry] = box.pending()
            claim = box.claim(entry)
            assert claim is not None
            if i % 2:
                box.done(claim)
            else:
                box.release(claim)
                again = box.claim(box.pending()[0])
                assert again is not None
                box.done(again)
            assert box.claim(entry) is None  # sent meanwhile: lost the race
        box.sync()

    cycle(200)  # warm-up: caches, interned strings, the set's table
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, outbox_module.__file__)]
        )
        cycle(2_000)
        after = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, outbox_module.__file__)]
        )
    finally:
        tracemalloc.stop()

    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 20_000  # a name kept per claim is ~200 KB over 3,000 claims


def test_a_claim_is_stale_from_exactly_the_stale_bound_on(tmp_path: Path) -> None:
    """Whoever holds it (this process, or another one alive), a claim goes back to pending
    once it is `STALE_CLAIM_SECONDS` old, not a moment later; younger, it stays."""
    box = Outbox(tmp_path, 100, 10**6)
    mine_id, theirs_id = box.put(b"mine", "error"), box.put(b"theirs", "error")
    claimed_at = 1_800_000_000
    with freezegun.freeze_time(datetime.fromtimestamp(claimed_at, UTC)):
        mine = box.claim(box.pending()[0])
    (tmp_path / "pending" / f"{theirs_id}.envelope").rename(
        tmp_path / "sending" / f"{theirs_id}.{os.getppid()}.{claimed_at}"
    )
    stale = claimed_at + outbox_module.STALE_CLAIM_SECONDS

    with freezegun.freeze_time(datetime.fromtimestamp(stale - 0.5, UTC)):
        young = box.recover()
    with freezegun.freeze_time(datetime.fromtimestamp(stale, UTC)):
        old = box.recover()

    assert mine is not None and mine_id == mine.id
    assert (0, 2) == (young, old)
    assert [mine_id, theirs_id] == [e.id for e in box.pending()]


def test_envelopes_another_process_put_count_towards_the_bounds(tmp_path: Path) -> None:
    """Workers share the directory: what the others put is found by the next scan (at most
    a second after the last one), not only what this process put itself."""
    here, there = Outbox(tmp_path, 10, 10**6), Outbox(tmp_path, 10, 10**6)
    with freezegun.freeze_time("2026-12-01 12:00:00") as clock:
        first = [claim.id for claim in here.over_bounds()]  # a scan of the empty outbox
        ids = []
        for _ in range(15):
            ids.append(there.put(b"x", "other"))
            clock.tick(0.1)
        claims = here.over_bounds()
        for claim in claims:
            here.done(claim)

    assert [] == first
    assert ids[:5] == [claim.id for claim in claims]
    assert (10, 10) == here.depth()


def test_an_outbox_just_under_its_bounds_drops_the_first_envelope_over_them_at_once(
    tmp_path: Path,
) -> None:
    """What a scan found stays counted: just under a bound, the next put past it is caught
    without waiting for the next scan (bytes here, then envelopes)."""
    by_bytes, by_count = Outbox(tmp_path / "b", 100, 1_000), Outbox(tmp_path / "c", 10, 10**9)
    with freezegun.freeze_time("2026-12-01 12:00:00") as clock:
        ids: dict[Outbox, list[str]] = {by_bytes: [], by_count: []}
        scans, dropped = [], []
        for box in (by_bytes, by_count):
            for _ in range(9):
                ids[box].append(box.put(b"x" * 100, "other"))
                clock.tick(0.01)
            scans += box.over_bounds()  # 9 envelopes, 900 bytes: nothing to drop
            for _ in range(2):
                ids[box].append(box.put(b"x" * 60, "other"))
                clock.tick(0.01)
            claims = box.over_bounds()  # the same second
            for claim in claims:
                box.done(claim)
            dropped.append([claim.id for claim in claims])

    assert [] == scans
    assert [ids[by_bytes][:1], ids[by_count][:1]] == dropped
    assert [(10, 920), (10, 920)] == [by_bytes.depth(), by_count.depth()]
