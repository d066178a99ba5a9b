"""The in-memory, thread-safe book of head-turn challenges a service keeps per worker process.

``issue`` → ``consume`` (the answer, once) → ``record`` the result → ``redeem`` a passed result (once,
e.g. by the verification that needs it); ``answer`` consumes, checks
(:func:`facever.liveness.check_liveness`) and records in one call. Unknown, expired and already used
ids are refused with a :class:`~facever.liveness.challenge.ChallengeError` whose ``code`` says which.
For a store shared by several workers: :class:`~facever.liveness.shared_store.DatabaseChallengeStore`.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from facever.liveness.challenge import Challenge, ChallengeError, new_challenge
from facever.liveness.check import check_liveness


@dataclass
class _Entry:
    challenge: Challenge
    state: str = "pending"  # pending → answered → (passed result) redeemed
    result: Any = None
    keep_until: float = 0.0


class ChallengeStore:
    """Challenges of one process, in memory and thread-safe.

    Args:
        ttl_s: seconds a challenge may be answered after it is issued.
        result_ttl_s: seconds a passed result may be redeemed after it is recorded.
        max_entries: most challenges held at once (oldest dropped first), bounding memory.
        clock: time source (seconds since the epoch); tests pass a fake one.
    """

    def __init__(self, ttl_s: float = 60.0, result_ttl_s: float = 120.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = float(ttl_s)
        self.result_ttl_s = float(result_ttl_s)
        self.max_entries = int(max_entries)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def issue(self, n_steps: int = 2, rng: random.Random | None = None) -> Challenge:
        """A new challenge, held until it is consumed or expires."""
        now = self._clock()
        challenge = new_challenge(rng=rng, ttl_s=self.ttl_s, n_steps=n_steps, now=now)
        with self._lock:
            self._purge(now)
            while len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[challenge.id] = _Entry(challenge, keep_until=challenge.expires)
        return challenge

    def consume(self, challenge_id: str) -> Challenge:
        """Take a pending challenge to answer it (once). Raises :class:`ChallengeError`: unknown,
        expired, or already used."""
        now = self._clock()
        with self._lock:
            entry = self._get(challenge_id, now)
            if entry.state != "pending":
                raise ChallengeError("challenge_used", f"challenge {challenge_id}: already used; ask for a new one")
            self._check_time(entry, challenge_id, now)
            entry.state = "answered"
            entry.keep_until = now + self.result_ttl_s
            return entry.challenge

    def record(self, challenge_id: str, result: Any) -> None:
        """Keep the result of an answered challenge; a passed one (``result.live``) may be redeemed once
        within ``result_ttl_s``."""
        now = self._clock()
        with self._lock:
            entry = self._get(challenge_id, now)
            if entry.state != "answered" or entry.result is not None:
                raise ChallengeError("challenge_used", f"challenge {challenge_id}: not awaiting a result")
            self._check_time(entry, challenge_id, now)
            entry.result = result
            entry.keep_until = now + self.result_ttl_s

    def redeem(self, challenge_id: str) -> Any:
        """The passed result of an answered challenge, once. Raises :class:`ChallengeError`: unknown,
        expired, already redeemed, not answered yet (``challenge_unknown``), or not passed
        (``liveness_failed``)."""
        now = self._clock()
        with self._lock:
            entry = self._get(challenge_id, now)
            if entry.state == "redeemed":
                raise ChallengeError("challenge_used", f"challenge {challenge_id}: already used; ask for a new one")
            if entry.state != "answered" or entry.result is None:
                raise ChallengeError("challenge_unknown", f"challenge {challenge_id}: not answered yet")
            self._check_time(entry, challenge_id, now)
            if not getattr(entry.result, "live", False):
                entry.state = "redeemed"
                raise ChallengeError("liveness_failed", f"challenge {challenge_id}: the liveness check was not passed "
                                     f"({getattr(entry.result, 'reason', 'no reason')})")
            entry.state = "redeemed"
            return entry.result

    def answer(self, challenge_id: str, frames: Any, verifier: Any, **kwargs: Any) -> Any:
        """Consume a challenge, check ``frames`` against it (:func:`facever.liveness.check_liveness`,
        ``kwargs`` passed on) and record the result, which is returned."""
        challenge = self.consume(challenge_id)
        result = check_liveness(frames, challenge, verifier, now=self._clock(), **kwargs)
        self.record(challenge_id, result)
        return result

    def _get(self, challenge_id: str, now: float) -> _Entry:
        self._purge(now)
        entry = self._entries.get(challenge_id)
        if entry is None:
            raise ChallengeError("challenge_unknown", f"challenge {challenge_id}: unknown or expired; ask for a new one")
        return entry

    @staticmethod
    def _check_time(entry: _Entry, challenge_id: str, now: float) -> None:
        if now >= entry.keep_until:
            raise ChallengeError("challenge_expired", f"challenge {challenge_id}: expired; ask for a new one")

    def _purge(self, now: float) -> None:
        # entries are kept a grace minute past their time so that late callers hear "expired", not "unknown"
        stale = [k for k, e in self._entries.items() if now >= e.keep_until + 60.0]
        for k in stale:
            del self._entries[k]
