"""Head-turn challenges: issued at random, answered once, before they expire.

A :class:`Challenge` asks the person in front of the camera for head turns in a random order (e.g.
``("right", "left")``). Directions are the subject's own: ``"left"`` means the person turns their
head to *their* left, which moves the nose towards the right of an unmirrored camera image.

:class:`~facever.liveness.challenge_store.ChallengeStore` keeps them (per process) and
:class:`~facever.liveness.shared_store.DatabaseChallengeStore` (shared by every worker); unknown,
expired and already used ids are refused with a :class:`ChallengeError` whose ``code`` says which.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

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
