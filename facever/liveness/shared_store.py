"""Liveness challenges kept in the gallery database, so every worker and machine shares them.

:class:`DatabaseChallengeStore` has the interface of the in-memory
:class:`~facever.liveness.challenge_store.ChallengeStore` (``issue``, ``consume``, ``record``, ``redeem``,
``answer``), with each state change one conditional UPDATE: a challenge issued by one worker can be
answered through another, and is answered once and redeemed once whichever process asks first.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import numpy as np
from sqlalchemy import delete, select, update

from facever.liveness.challenge import Challenge, ChallengeError, new_challenge
from facever.liveness.check import check_liveness
from facever.store.schema import LivenessChallengeRow
from facever.store.session import Database


class DatabaseChallengeStore:
    """Challenges in ``db`` (table ``liveness_challenges``).

    Args:
        db: the gallery database.
        ttl_s: seconds a challenge may be answered after it is issued.
        result_ttl_s: seconds a passed result may be redeemed after it is recorded.
        clock: time source (seconds since the epoch); tests pass a fake one.
    """

    def __init__(self, db: Database, ttl_s: float = 60.0, result_ttl_s: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.ttl_s = float(ttl_s)
        self.result_ttl_s = float(result_ttl_s)
        self._clock = clock

    def issue(self, n_steps: int = 2, rng: random.Random | None = None, key_name: str = "") -> Challenge:
        """A new challenge, stored until it is used or expires (expired rows are purged here)."""
        now = self._clock()
        challenge = new_challenge(rng=rng, ttl_s=self.ttl_s, n_steps=n_steps, now=now)
        with self.db.write() as session:
            session.execute(delete(LivenessChallengeRow).where(
                LivenessChallengeRow.expires < now - self.result_ttl_s - 60.0))
            session.add(LivenessChallengeRow(id=challenge.id, steps=",".join(challenge.steps), created=now,
                                             expires=challenge.expires, state="pending", key_name=key_name[:64]))
        return challenge

    def consume(self, challenge_id: str) -> Challenge:
        """Take a pending challenge to answer it, once. Raises :class:`ChallengeError`."""
        now = self._clock()
        with self.db.write() as session:
            row = self._row(session, challenge_id)
            if row.state != "pending":
                raise ChallengeError("challenge_used", f"challenge {challenge_id}: already used; ask for a new one")
            if now >= row.expires:
                raise ChallengeError("challenge_expired", f"challenge {challenge_id}: expired; ask for a new one")
            taken = session.execute(update(LivenessChallengeRow)
                                    .where(LivenessChallengeRow.id == challenge_id, LivenessChallengeRow.state == "pending")
                                    .values(state="answered")).rowcount
            if taken != 1:
                raise ChallengeError("challenge_used", f"challenge {challenge_id}: already used; ask for a new one")
            return Challenge(row.id, tuple(row.steps.split(",")), row.created, row.expires)

    def record(self, challenge_id: str, result: Any) -> None:
        """Keep the result of an answered challenge (its JSON, and the live face's embedding)."""
        now = self._clock()
        emb = getattr(result, "embedding", None)
        with self.db.write() as session:
            session.execute(update(LivenessChallengeRow).where(LivenessChallengeRow.id == challenge_id).values(
                live=bool(getattr(result, "live", False)), result=result.to_dict(),
                embedding=None if emb is None else np.asarray(emb, "<f4").tobytes(),
                result_expires=now + self.result_ttl_s))

    def redeem(self, challenge_id: str) -> tuple[dict[str, Any], np.ndarray | None]:
        """The passed result of an answered challenge (JSON, live-face embedding), once.

        Raises :class:`ChallengeError`: unknown, not answered yet, expired, already redeemed
        (``challenge_used``) or not passed (``liveness_failed``).
        """
        now = self._clock()
        with self.db.write() as session:
            row = self._row(session, challenge_id)
            if row.state == "redeemed":
                raise ChallengeError("challenge_used", f"challenge {challenge_id}: already used; ask for a new one")
            if row.state != "answered" or row.result is None:
                raise ChallengeError("challenge_unknown", f"challenge {challenge_id}: not answered yet")
            if row.result_expires is not None and now >= row.result_expires:
                raise ChallengeError("challenge_expired", f"challenge {challenge_id}: the liveness result expired")
            taken = session.execute(update(LivenessChallengeRow)
                                    .where(LivenessChallengeRow.id == challenge_id,
                                           LivenessChallengeRow.state == "answered")
                                    .values(state="redeemed")).rowcount
            if taken != 1:
                raise ChallengeError("challenge_used", f"challenge {challenge_id}: already used; ask for a new one")
            if not row.live:
                raise ChallengeError("liveness_failed", f"challenge {challenge_id}: the liveness check was not passed "
                                     f"({row.result.get('reason', 'no reason')})")
            emb = np.frombuffer(row.embedding, "<f4").astype(np.float32) if row.embedding else None
            return dict(row.result), emb

    def answer(self, challenge_id: str, frames: Any, verifier: Any, **kwargs: Any) -> Any:
        """Consume a challenge, check ``frames`` (:func:`facever.liveness.check_liveness`), record and
        return the result."""
        challenge = self.consume(challenge_id)
        result = check_liveness(frames, challenge, verifier, now=self._clock(), **kwargs)
        self.record(challenge_id, result)
        return result

    @staticmethod
    def _row(session, challenge_id: str) -> LivenessChallengeRow:
        row = session.scalar(select(LivenessChallengeRow).where(LivenessChallengeRow.id == str(challenge_id)[:64]))
        if row is None:
            raise ChallengeError("challenge_unknown", f"challenge {challenge_id}: unknown or expired; ask for a new one")
        return row
