"""Flood control: a token bucket; time is an argument."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.core.ratelimit import FloodGate, FloodPolicy


def run_now(gate: FloodGate, now: float) -> bool:
    """Take a token if one is there; say whether the command ran."""
    if gate.wait(now) == 0.0:
        gate.take(now)
        return True
    return False


def test_defaults() -> None:
    p = FloodPolicy()
    assert (p.rate, p.burst, p.max_queue) == (4.0, 12, 40)


def test_a_burst_passes_at_once_then_commands_wait() -> None:
    gate = FloodGate(FloodPolicy(rate=4.0, burst=12), now=100.0)
    for _ in range(12):
        assert gate.wait(100.0) == 0.0
        gate.take(100.0)
    assert gate.wait(100.0) == pytest.approx(0.25)


def test_the_wait_shrinks_as_time_passes() -> None:
    gate = FloodGate(FloodPolicy(rate=2.0, burst=3), now=0.0)
    for _ in range(3):
        gate.take(0.0)
    assert gate.wait(0.0) == pytest.approx(0.5)
    assert gate.wait(0.2) == pytest.approx(0.3)
    assert gate.wait(0.5) == 0.0


def test_waits_add_up_when_commands_are_taken_on_credit() -> None:
    """The adapter takes the token for a delayed command when it runs it;
    a command taken early puts the next one further back."""
    gate = FloodGate(FloodPolicy(rate=4.0, burst=1), now=0.0)
    gate.take(0.0)
    gate.take(0.0)  # ran anyway (e.g. the adapter's queue): the bucket is in debt
    assert gate.wait(0.0) == pytest.approx(0.5)
    assert gate.wait(0.5) == 0.0


def test_refill_is_capped_at_the_burst() -> None:
    gate = FloodGate(FloodPolicy(rate=10.0, burst=5), now=0.0)
    for _ in range(5):
        gate.take(0.0)
    # A long quiet spell earns back one burst, not more.
    ran = [run_now(gate, 1000.0) for _ in range(8)]
    assert ran == [True] * 5 + [False] * 3


def test_steady_rate_never_waits() -> None:
    gate = FloodGate(FloodPolicy(rate=4.0, burst=2), now=0.0)
    for i in range(100):
        t = i * 0.25
        assert gate.wait(t) == 0.0
        gate.take(t)


def test_faster_than_the_rate_ends_up_waiting() -> None:
    gate = FloodGate(FloodPolicy(rate=4.0, burst=2), now=0.0)
    ran = [run_now(gate, i * 0.1) for i in range(20)]
    assert ran[:2] == [True, True]
    assert not all(ran)
    # Over 2 s at 4/s plus a burst of 2, at most 2 + 4 * 1.9 commands ran.
    assert sum(ran) <= 2 + 4 * 1.9 + 1e-9


def test_time_going_backwards_gives_nothing_back() -> None:
    gate = FloodGate(FloodPolicy(rate=1.0, burst=1), now=10.0)
    gate.take(10.0)
    assert gate.wait(5.0) == pytest.approx(1.0)
    assert gate.wait(10.5) == pytest.approx(0.5)


@settings(max_examples=100, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50.0),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=60),
)
def test_wait_is_exactly_the_time_until_the_next_token(
    rate: float, burst: int, gaps: list[float]
) -> None:
    gate = FloodGate(FloodPolicy(rate=rate, burst=burst), now=0.0)
    now = 0.0
    ran = 0
    for gap in gaps:
        now += gap
        w = gate.wait(now)
        assert w >= 0.0
        if w > 0.0:
            # Waiting noticeably less is not enough, and waiting that long is.
            if w > 1e-6:
                assert gate.wait(now + w * 0.5) > 0.0
            now += w
            # (Float rounding may leave a remainder of ~1e-16 s: harmless.)
            assert gate.wait(now + 1e-9) <= 1e-9
        gate.take(now)
        ran += 1
    # Never more than the burst plus what the rate earned.
    assert ran <= burst + rate * now + 1e-6
