"""Routes that manage enrolled people: list, show, rename, remove, remove a face, a face's crop.

Listing and showing need the ``identify`` scope; everything that changes the gallery or returns
face images (biometric data) needs ``admin``. Every write is audited under the key's name.
"""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from facever.errors import FaceverError
from facever.service.auth import Caller, require
from facever.service.problems import Problem
from facever.service.uploads import person_name
from facever.store.schema import NAME_MAX_LENGTH

router = APIRouter(prefix="/v1/people", tags=["people"])


class Rename(BaseModel):
    """``PATCH`` body: the person's new name."""

    name: str = Field(..., min_length=1, max_length=NAME_MAX_LENGTH, description="the new name, stored exactly")


def _state(request: Request):
    return request.app.state.service


@router.get("", summary="List enrolled people, paged (scope: identify)")
def list_people(request: Request, offset: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int, Query(ge=1, le=500)] = 50,
                q: Annotated[str | None, Query(max_length=NAME_MAX_LENGTH)] = None,
                caller: Caller = Depends(require("identify"))) -> dict:
    """People by name with their face counts; ``q`` filters by a case-insensitive substring of the name."""
    people, total = _state(request).gallery.people_page(offset=offset, limit=limit, query=q or None)
    return {"people": [p.to_dict() for p in people], "total": total, "offset": offset, "limit": limit}


@router.get("/{person}", summary="One person and their faces (scope: identify)")
def show_person(request: Request, person: str, caller: Caller = Depends(require("identify"))) -> dict:
    """The person's faces: id, source, image hash, box, landmarks, quality, model versions (no crops)."""
    return _state(request).gallery.person(person_name(person)).to_dict()


@router.patch("/{person}", summary="Rename a person (scope: admin)")
def rename_person(request: Request, person: str, body: Rename, caller: Caller = Depends(require("admin"))) -> dict:
    """Give the person a new name (409 ``person_exists`` when it is taken)."""
    state = _state(request)
    old = person_name(person)
    try:
        with state.gallery_lock:
            state.gallery.actor = caller.name
            try:
                state.gallery.rename(old, body.name)
            finally:
                state.gallery.actor = "service"
    except FaceverError:
        raise
    except ValueError as exc:  # an invalid new name
        raise Problem(422, "invalid_request", str(exc)) from exc
    return state.gallery.person(body.name).to_dict()


@router.delete("/{person}", summary="Erase a person: every crop and vector (scope: admin)")
def remove_person(request: Request, person: str, caller: Caller = Depends(require("admin"))) -> dict:
    """Delete the person with every face crop and embedding (SQLite pages overwritten with zeros)."""
    state = _state(request)
    name = person_name(person)
    with state.gallery_lock:
        state.gallery.actor = caller.name
        try:
            n = state.gallery.remove(name)
        finally:
            state.gallery.actor = "service"
    return {"person": name, "faces_removed": n}


@router.delete("/{person}/faces/{face_id}", summary="Remove one face of a person (scope: admin)")
def remove_face(request: Request, person: str, face_id: int, caller: Caller = Depends(require("admin"))) -> dict:
    """Delete one face (crop and embeddings); the person stays enrolled."""
    state = _state(request)
    name = person_name(person)
    with state.gallery_lock:
        state.gallery.actor = caller.name
        try:
            left = state.gallery.remove_face(name, face_id)
        finally:
            state.gallery.actor = "service"
    return {"person": name, "face_id": face_id, "faces_left": left}


@router.get("/{person}/faces/{face_id}/crop", summary="A stored face crop as JPEG (scope: admin)",
            responses={200: {"content": {"image/jpeg": {}}}})
def face_crop(request: Request, person: str, face_id: int, caller: Caller = Depends(require("admin"))) -> Response:
    """The aligned crop stored for one of this person's faces (biometric data: admin keys only)."""
    name = person_name(person)
    crops = dict(_state(request).gallery.face_crops(name))
    if face_id not in crops:
        raise Problem(404, "face_not_found", f"{name!r} has no face {face_id}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(crops[face_id]), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise Problem(500, "internal_error", "could not encode the crop")
    return Response(bytes(buf), media_type="image/jpeg", headers={"Cache-Control": "no-store"})
