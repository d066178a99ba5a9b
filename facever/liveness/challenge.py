"""Head-turn challenges: issued at random, answered once, before they expire.

A :class:`Challenge` asks the person in front of the camera for head turns in a random order (e.g.
``("right", "left")``). Directions are the subject's own: ``"left"`` means the person turns their
head to *their* left, which moves the nose towards the right of an unmirrored camera image.

:class:`ChallengeStore` is the in-memory, thread-safe book a service keeps per worker process:
``issue`` → ``consume`` (the answer, once) → ``record`` the result → ``redeem`` a passed result (once,
e.g. by the verification that needs it). Unknown, expired and already used ids are refused with a
:class:`ChallengeError` whose ``code`` says which.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from facever.errors import FaceverError

#: Directions a challenge may ask for.
DIRECTIONS = ("left", "right")
#: What the person is told for each step.
INSTRUCTIONS = {"left": "turn your head to your left", "right": "turn your head to your right"}


class ChallengeError(FaceverError):
    """A challenge id cannot be used: ``code`` is ``"challenge_unknown"``, ``"challenge_expired"``,
    ``"challenge_used"`` or ``"liveness_failed"`` (redeeming a challenge that was not passed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Challenge:
    """One head-turn challenge.

    Attributes:
        id: unguessable token (URL-safe text).
        steps: the turns asked for, in order; each ``"left"`` or ``"right"``, both present.
        created: issue time, seconds since the epoch.
        expires: expiry time, seconds since the epoch.
    """

    id: str
    steps: tuple[str, ...]
    created: float
    expires: float

    def __post_init__(self) -> None:
        bad = [s for s in self.steps if s not in DIRECTIONS]
        if bad or not set(DIRECTIONS) <= set(self.steps):
            raise ValueError(f"challenge steps must use both of {DIRECTIONS} and nothing else, got {list(self.steps)}")

    def expired(self, now: float | None = None) -> bool:
        """Whether the challenge is past its expiry at ``now`` (default: the current time)."""
        return (time.time() if now is None else now) >= self.expires

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: id, steps, instructions, expiry (ISO 8601 UTC and seconds since the epoch)."""
        return {"id": self.id, "steps": list(self.steps), "instructions": [INSTRUCTIONS[s] for s in self.steps],
                "expires_at": datetime.fromtimestamp(self.expires, timezone.utc).isoformat(timespec="seconds"),
                "expires": round(self.expires, 3)}


def random_steps(n_steps: int = 2, rng: random.Random | None = None) -> tuple[str, ...]:
    """A random sequence of ``n_steps`` (≥ 2) turns using both directions; uniform over such
    sequences (2 of them for 2 steps, 6 for 3). ``rng`` defaults to the system's secure source."""
    if n_steps < 2:
        raise ValueError(f"a challenge needs at least 2 steps (both directions), got {n_steps}")
    rng = rng or secrets.SystemRandom()
    while True:
        steps = tuple(rng.choice(DIRECTIONS) for _ in range(n_steps))
        if set(steps) == set(DIRECTIONS):
            return steps


def new_challenge(rng: random.Random | None = None, ttl_s: float = 60.0, n_steps: int = 2,
                  now: float | None = None) -> Challenge:
    """Issue a challenge: random steps (:func:`random_steps`), a fresh id, expiry ``ttl_s`` seconds
    from ``now`` (default: the current time). The id always comes from :mod:`secrets`."""
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    t = time.time() if now is None else now
    return Challenge(id=secrets.token_urlsafe(16), steps=random_steps(n_steps, rng), created=t, expires=t + ttl_s)


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
        from facever.liveness.check import check_liveness

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
