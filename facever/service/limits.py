"""Back-pressure and rate limits of one worker process.

* :class:`InferenceLimiter`: at most ``slots`` inferences run at once (in threads: onnxruntime releases
  the GIL), at most ``queue`` more wait for a slot; any request past that is refused at once with 503
  and ``Retry-After``, so latency stays bounded instead of growing with the load.
* :class:`RateLimiter`: a token bucket per API key (requests per minute), answered with 429.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, TypeVar

import anyio
import anyio.to_thread

from facever.service.problems import Problem

T = TypeVar("T")


class InferenceLimiter:
    """Bounded concurrency for the expensive calls of one worker.

    Args:
        slots: inferences run at once (>= 1).
        queue: requests that may wait for a slot (>= 0).
        retry_after_s: the ``Retry-After`` sent with a 503, seconds.
    """

    def __init__(self, slots: int, queue: int, retry_after_s: int = 1) -> None:
        self.slots = int(slots)
        self.queue = int(queue)
        self.retry_after_s = int(retry_after_s)
        self._admitted = 0
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def admitted(self) -> int:
        """Requests running or waiting now."""
        return self._admitted

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` in a worker thread once a slot is free; 503 ``overloaded`` when full."""
        if self._admitted >= self.slots + self.queue:
            raise Problem(503, "overloaded",
                          f"every inference slot ({self.slots}) and queue place ({self.queue}) is taken; retry shortly",
                          headers={"Retry-After": str(self.retry_after_s)})
        if self._limiter is None:  # created inside the event loop
            self._limiter = anyio.CapacityLimiter(self.slots)
        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self._admitted -= 1


class RateLimiter:
    """Token buckets, one per key name: ``rate`` requests per minute, bursts up to ``rate``.

    With several worker processes each holds its own buckets; the service divides a key's rate by the
    number of workers, so the total stays near the key's rate when the load is spread evenly.
    """

    def __init__(self, divisor: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.divisor = max(1, int(divisor))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name → (tokens, last time)
        self._lock = threading.Lock()

    def check(self, name: str, per_minute: int | None) -> None:
        """Take one token from ``name``'s bucket; raise 429 ``rate_limited`` when it is empty."""
        if not per_minute:
            return
        rate = max(per_minute / self.divisor, 1e-9)
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(name, (rate, now))
            tokens = min(rate, tokens + (now - last) * rate / 60.0)
            if tokens < 1.0:
                self._buckets[name] = (tokens, now)
                wait = math.ceil((1.0 - tokens) * 60.0 / rate)
                raise Problem(429, "rate_limited", f"key {name!r} is limited to {per_minute} requests per minute",
                              headers={"Retry-After": str(max(1, wait))})
            self._buckets[name] = (tokens - 1.0, now)
