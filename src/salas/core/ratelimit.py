"""Flood control as modern IRC servers do it: a token bucket with fake lag.

A burst passes at once; past it, each command waits for its token (delayed,
not dropped). The network adapter keeps the waiting commands and cuts the
sender off when too many pile up. Time is an argument: no clock here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FloodPolicy:
    #: Commands per second a sender may keep up for ever.
    rate: float = 4.0
    #: Commands that may arrive at once before any is delayed.
    burst: int = 12
    #: Delayed commands that may wait at once; one more and the sender is cut off.
    max_queue: int = 40


class FloodGate:
    __slots__ = ("_stamp", "_tokens", "policy")

    def __init__(self, policy: FloodPolicy, now: float) -> None:
        self.policy = policy
        self._tokens = float(policy.burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            p = self.policy
            self._tokens = min(float(p.burst), self._tokens + (now - self._stamp) * p.rate)
            self._stamp = now

    def wait(self, now: float) -> float:
        """Seconds until the next command may run (0: now)."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.policy.rate

    def take(self, now: float) -> None:
        """Spend a token on a command that runs now."""
        self._refill(now)
        self._tokens -= 1.0
