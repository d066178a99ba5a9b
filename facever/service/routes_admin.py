"""Routes about the service itself: health, readiness, the model, API keys and the audit log."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import facever
from facever.audit import audit_events
from facever.keys import SCOPES
from facever.service.auth import Caller, require
from facever.service.problems import Problem, problem_response

router = APIRouter(tags=["service"])


class NewKey(BaseModel):
    """``POST /v1/keys`` body."""

    name: str = Field(..., min_length=1, max_length=64, description="letters, digits, '.', '_' or '-'")
    scopes: list[str] = Field(..., min_length=1, description=f"any of {', '.join(SCOPES)}")
    rate_per_min: int | None = Field(None, ge=1, description="requests per minute (none: unlimited)")


def _state(request: Request):
    return request.app.state.service


@router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    """Always ``{"status": "ok"}`` while the process answers."""
    return {"status": "ok"}


@router.get("/readyz", summary="Model loaded and database reachable")
def readyz(request: Request):
    """200 when this worker can serve; 503 ``not_ready`` (with Retry-After) when the database is not reachable."""
    state = getattr(request.app.state, "service", None)
    if state is None:
        return problem_response(Problem(503, "not_ready", "the model is still loading", headers={"Retry-After": "1"}),
                                request.url.path)
    try:
        state.gallery.sync()
    except facever.DatabaseError as exc:
        return problem_response(Problem(503, "database_unavailable", str(exc), headers={"Retry-After": "5"}),
                                request.url.path)
    return {"status": "ready", "model_version": state.verifier.model_version, "database": "ok"}


@router.get("/v1/model", summary="The loaded model: version, τ and its calibration (any key)")
def model(request: Request, caller: Caller = Depends(require(None))) -> dict:
    """Version, τ with the error rates it gives on its calibration set, and whether open-set data is present."""
    verifier = _state(request).verifier
    meta = verifier.bundle.metadata
    open_set = getattr(meta, "open_set", None)
    threshold = asdict(meta.threshold) if meta.threshold is not None else {}
    return {"version": verifier.model_version, "facever_version": facever.__version__,
            "architecture": getattr(meta, "architecture", None), "embedding_dim": int(meta.embedding_dim),
            "input_size": getattr(meta, "input_size", None), "view_zooms": list(getattr(meta, "view_zooms", []) or []),
            "threshold": {**threshold, "value": verifier.threshold},
            "open_set": bool(open_set), "default_fpir": (open_set or {}).get("default_fpir")}


@router.get("/v1/keys", summary="API keys, never their secrets (scope: admin)")
def list_keys(request: Request, caller: Caller = Depends(require("admin"))) -> dict:
    """Every key: name, scopes, rate, created, revoked."""
    return {"keys": [k.to_dict() for k in _state(request).keys.list()]}


@router.post("/v1/keys", status_code=201, summary="Create an API key, shown once (scope: admin)")
def create_key(request: Request, body: NewKey, caller: Caller = Depends(require("admin"))) -> dict:
    """A new key with the given scopes; the plaintext ``key`` is in this answer only."""
    try:
        key, secret = _state(request).keys.create(body.name, body.scopes, body.rate_per_min, actor=caller.name)
    except ValueError as exc:  # a bad name, scope or rate (KeyExistsError is not a ValueError)
        raise Problem(422, "invalid_request", str(exc)) from exc
    return {**key.to_dict(), "key": secret}


@router.delete("/v1/keys/{name}", summary="Revoke an API key (scope: admin)")
def revoke_key(request: Request, name: str, caller: Caller = Depends(require("admin"))) -> dict:
    """Revoke the key; every worker refuses it from the next request on."""
    return _state(request).keys.revoke(name, actor=caller.name).to_dict()


@router.get("/v1/audit", summary="The audit log of every write (scope: admin)")
def audit(request: Request, since: datetime | None = None,
          limit: Annotated[int, Query(ge=1, le=10000)] = 200,
          caller: Caller = Depends(require("admin"))) -> dict:
    """Writes newest first: time, actor (the key name, or ``cli``), action, person, face ids."""
    return {"events": [e.to_dict() for e in audit_events(_state(request).gallery.db, since=since, limit=limit)]}
