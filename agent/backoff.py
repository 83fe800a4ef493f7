"""Capped exponential backoff with jitter: device reopen and broker reconnect both use it."""

from __future__ import annotations

import random


class Backoff:
    """Capped exponential backoff with jitter, so many terminals do not retry in lockstep."""

    def __init__(self, initial_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.initial_s * (2 ** min(self.attempt, 32)))  # a long outage must not overflow
        self.attempt += 1
        return float(delay * random.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.attempt = 0
