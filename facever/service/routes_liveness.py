"""Liveness routes: a random head-turn challenge, answered with frames of one capture, usable once.

* ``POST /v1/liveness/challenge`` → ``{id, steps, instructions, expires_at, expires}`` (any valid key).
* ``POST /v1/liveness/{id}`` (multipart ``frames``, in capture order; ``mirrored`` when they come from a
  selfie preview) → the check's result: ``live``, ``code``, ``reason``, figures per check. A refusal is
  an answer (``live: false``), not an error; the challenge is used up either way.
* ``POST /v1/people/{person}/verify?liveness={id}`` (in :mod:`routes_inference`) accepts the face only
  with a passed, unexpired challenge whose live face is the same face as the photo's.

Challenges live in the gallery database (:class:`facever.liveness.shared_store.DatabaseChallengeStore`),
so any worker or machine can answer one issued by another.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile

from facever.service.auth import Caller, require
from facever.service.problems import Problem
from facever.service.uploads import read_image, require_multipart

router = APIRouter(prefix="/v1/liveness", tags=["liveness"])

#: Most frames in one answer, and the largest frame, bytes (webcam JPEGs are ~50–200 kB).
MAX_FRAMES = 60
MAX_FRAME_BYTES = 10**6


def challenges(request: Request):
    """The worker's challenge book (created on first use)."""
    state = request.app.state.service
    book = state.extras.get("challenges")
    if book is None:
        from facever.liveness.shared_store import DatabaseChallengeStore

        book = state.extras["challenges"] = DatabaseChallengeStore(state.gallery.db)
    return book


@router.post("/challenge", status_code=201, summary="Issue a head-turn challenge (any key)")
def new_challenge(request: Request, caller: Caller = Depends(require(None))) -> dict:
    """Random turns (e.g. left then right) to perform in front of the camera before ``expires_at``."""
    return challenges(request).issue(key_name=caller.name).to_dict()


@router.post("/{challenge_id}", summary="Answer a challenge with the captured frames (any key)",
             dependencies=[Depends(require_multipart)])
async def answer(request: Request, challenge_id: Annotated[str, Path(max_length=64)],
                 frames: list[UploadFile] = File(...), mirrored: bool = False,
                 caller: Caller = Depends(require(None))) -> dict:
    """Check the frames against the challenge: the same face throughout, the asked turns in order,
    and 3D parallax across the turn (a photo, however tilted, moves as one plane)."""
    if len(frames) > MAX_FRAMES:
        raise Problem(413, "upload_too_large", f"at most {MAX_FRAMES} frames per answer, got {len(frames)}")
    data = [(await read_image(f, MAX_FRAME_BYTES, f"frame {i + 1}"))[0] for i, f in enumerate(frames)]
    state = request.app.state.service
    book = challenges(request)
    result = await state.limiter.run(lambda: book.answer(challenge_id, data, state.verifier, mirrored=mirrored))
    return result.to_dict()
