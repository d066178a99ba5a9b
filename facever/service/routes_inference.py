"""Routes that look at faces: 1:1 verify, verify against a person, identify, enrol.

Each runs its detection and embedding in a worker thread behind the inference limiter; the
gallery's in-memory index is touched only under the state's lock. Answers carry the same fields as
the CLI's ``--json``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from facever.errors import DuplicateIdentityError
from facever.service.auth import Caller, require
from facever.service.problems import Problem
from facever.service.settings import MAX_ENROL_IMAGES
from facever.service.uploads import person_name, read_image, require_multipart

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(require_multipart)])


def _state(request: Request):
    return request.app.state.service


@router.post("/verify", summary="Are two photos the same person? (scope: verify)")
async def verify(request: Request, image1: UploadFile = File(...), image2: UploadFile = File(...),
                 caller: Caller = Depends(require("verify"))) -> dict:
    """1:1: the largest face of each photo; same person when distance ≤ τ (calibrated, with its FAR/FRR)."""
    state = _state(request)
    a, label_a = await read_image(image1, state.settings.max_upload, "image1")
    b, label_b = await read_image(image2, state.settings.max_upload, "image2")
    result = await state.limiter.run(state.verifier.verify, a, b, (label_a, label_b))
    return {**result.to_dict(), "inputs": [label_a, label_b]}


@router.post("/people/{person}/verify", summary="Is this photo the enrolled person? (scope: identify)")
async def verify_person(request: Request, person: str, image: UploadFile = File(...),
                        liveness: Annotated[str | None, Query(max_length=64)] = None,
                        caller: Caller = Depends(require("identify"))) -> dict:
    """1:1 against an enrolled person: the distance to their nearest enrolled face, decided with τ.

    With ``liveness={challenge id}`` the photo is accepted only when that challenge was passed (and
    not used before) by the same face: the photo's face must be within τ of the live face.
    """
    state = _state(request)
    name = person_name(person)
    data, label = await read_image(image, state.settings.max_upload, "image")
    live = _redeem_liveness(request, liveness) if liveness is not None else None

    def work():
        aligned, emb = state.verifier.embed_with_face(data, name=label)
        if live is not None:
            _check_same_face(state.verifier, live[1], emb)
        with state.gallery_lock:
            state.gallery.sync()
            return state.gallery.compare_person(emb, name, faces=[aligned.face])

    result = await state.limiter.run(work)
    body = {**result.to_dict(), "person": name, "inputs": [label]}
    if live is not None:
        body["liveness"] = live[0]
    return body


def _redeem_liveness(request: Request, challenge_id: str):
    """The passed liveness result and live-face embedding of ``challenge_id`` (used up now)."""
    from facever.service.routes_liveness import challenges

    return challenges(request).redeem(challenge_id)


def _check_same_face(verifier, live_embedding, embedding) -> None:
    """403 ``liveness_face_mismatch`` unless the photo's face is within τ of the live face."""
    if live_embedding is None:
        raise Problem(403, "liveness_face_mismatch", "the liveness check kept no face to compare with")
    d = float(np.linalg.norm(np.asarray(live_embedding, np.float32) - np.asarray(embedding, np.float32)))
    if d > verifier.threshold:
        raise Problem(403, "liveness_face_mismatch", f"the photo's face is {d:.3f} from the face that passed the "
                      f"liveness check (τ = {verifier.threshold:.3f}): not the same face")


@router.post("/identify", summary="Who is in this photo? (scope: identify)")
async def identify(request: Request, image: UploadFile = File(...),
                   top_k: Annotated[int, Query(ge=1, le=100)] = 5,
                   fpir: Annotated[float | None, Query(gt=0.0, lt=1.0)] = None,
                   faces: Literal["all", "largest"] = "all",
                   caller: Caller = Depends(require("identify"))) -> dict:
    """1:K: every face (or the largest) against the gallery; ``person`` is null for unknown faces.

    The threshold follows the gallery size so that a stranger is named as someone with probability
    ``fpir`` (default: the model's, 1%); each face states its threshold, policy and expected FPIR.
    """
    state = _state(request)
    data, label = await read_image(image, state.settings.max_upload, "image")
    gallery = state.gallery

    def work():  # in a worker thread: nothing here blocks the event loop
        with state.gallery_lock:  # fail early (e.g. fpir without open-set data) before the expensive part
            gallery.threshold_for(fpir=fpir)
        aligned = state.verifier.embedder.find_faces(data, faces=faces, name=label)
        emb = state.verifier.embedder.embed_crops(np.stack([a.crop for a in aligned]))
        with state.gallery_lock:
            gallery.sync()
            choice = gallery.threshold_for(fpir=fpir)
            results = gallery.search(emb, top_k=top_k, fpir=fpir)
            index = gallery.index_status.to_dict()
        found = [{**r.to_dict(), "face": a.face.to_dict(), "quality": a.quality.to_dict()}
                 for r, a in zip(results, aligned)]
        return {**choice.to_dict(), "scoring": gallery.scoring, "model_version": state.verifier.model_version,
                "index": index, "image": label, "faces": found}

    return await state.limiter.run(work)


@router.post("/people/{person}/faces", summary="Enrol photos of a person (scope: enroll)",
             responses={201: {"description": "at least one face enrolled"}})
async def enroll(request: Request, person: str, images: list[UploadFile] = File(...),
                 allow_duplicate: bool = False, force: bool = False,
                 caller: Caller = Depends(require("enroll"))) -> JSONResponse:
    """Enrol 1–20 photos in one transaction; the report gives each image's outcome
    (enrolled / skipped / rejected with the reason). A face matching another enrolled person is
    refused (409 ``duplicate_identity``) unless ``allow_duplicate``; one merely within the
    identification threshold of another person is enrolled, and ``look_alikes`` warns about it."""
    state = _state(request)
    name = person_name(person)
    if len(images) > MAX_ENROL_IMAGES:
        raise Problem(413, "upload_too_large", f"at most {MAX_ENROL_IMAGES} images per enrolment, got {len(images)}")
    uploads = [await read_image(f, state.settings.max_upload, f"image {i + 1}") for i, f in enumerate(images)]
    labels = [label for _, label in uploads]

    def work():
        # detection and embedding without the lock (identifies go on meanwhile); the duplicate gate and
        # the write under it, against the gallery as it is then
        prepared = state.gallery.prepare_enrolment(name, [d for d, _ in uploads], force=force, labels=labels)
        with state.gallery_lock:
            state.gallery.sync()
            state.gallery.actor = caller.name
            try:
                return state.gallery.commit_enrolment(prepared, allow_duplicate=allow_duplicate)
            finally:
                state.gallery.actor = "service"

    try:
        report = await state.limiter.run(work)
    except DuplicateIdentityError as exc:
        refused = [{"source": lab, "status": "refused", "reason": str(exc)} for lab in labels]
        raise Problem(409, "duplicate_identity", str(exc), "Already enrolled under another name",
                      report={"person": name, "enrolled": 0, "images": refused}) from exc
    body = report.to_dict()
    if report.outcomes and report.rejected == len(report.outcomes):
        raise Problem(400, "enrolment_rejected", f"no image of {name!r} could be enrolled: "
                      f"{report.outcomes[0].reason}", "Nothing enrolled", report=body)
    return JSONResponse(body, status_code=201 if report.enrolled else 200)
