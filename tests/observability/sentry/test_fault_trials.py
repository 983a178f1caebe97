"""The short version of the randomized fault trials (`bench.faults`; the long one is
``python -m bench.faults --trials 500``): kill -9 at random moments, files cut short, a
full and a read-only outbox, each checking at the loopback ingest that every acknowledged
event arrived exactly once after the restart or was counted as lost.

Real child processes, a real tmpfs (the full and read-only kinds are skipped, with the
reason, without root and mount(2)); the seed is random and printed on failure.
"""

from __future__ import annotations

import random

import pytest

from bench.faults import KINDS, run_trials


@pytest.mark.parametrize("kind", KINDS)
def test_every_acknowledged_event_arrives_once_or_is_counted(kind: str) -> None:
    seed = random.randrange(2**32)
    trials = run_trials(3, seed, (kind,))

    if all(trial.skipped for trial in trials):
        pytest.skip(trials[0].skipped or "")
    problems = [problem for trial in trials for problem in trial.problems()]
    assert [] == problems, f"seed {seed}"
    assert sum(len(trial.acked) for trial in trials) > 0
