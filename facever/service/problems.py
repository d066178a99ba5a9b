"""Errors as RFC 9457 problem details: one stable ``code`` per facever error class.

Every error the service sends is ``application/problem+json``::

    {"type": "urn:facever:problem:no_face", "title": "No face found", "status": 400,
     "detail": "upload.jpg: no face found", "code": "no_face", "instance": "/v1/verify"}

Nothing a client sends may produce a traceback: unexpected exceptions become a bare 500
``internal_error`` (logged on the server, never echoed).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facever import errors as fe

log = logging.getLogger("facever.service")

PROBLEM_TYPE = "urn:facever:problem:"
MEDIA_TYPE = "application/problem+json"

#: facever error class → (HTTP status, code, title); the first matching class in this order wins.
ERROR_MAP: list[tuple[type[Exception], int, str, str]] = [
    (fe.ImageTooLargeError, 413, "upload_too_large", "Image too large"),
    (fe.UnsupportedImageError, 415, "unsupported_media_type", "Not a supported image"),
    (fe.ImageError, 400, "bad_image", "Unreadable image"),
    (fe.NoFaceError, 400, "no_face", "No face found"),
    (fe.MultipleFacesError, 400, "multiple_faces", "Several faces found"),
    (fe.FaceQualityError, 400, "face_quality", "Face below the quality bar"),
    (fe.PersonNotFoundError, 404, "person_not_found", "Unknown person"),
    (fe.DuplicateIdentityError, 409, "duplicate_identity", "Already enrolled under another name"),
    (fe.PersonExistsError, 409, "person_exists", "Name taken"),
    (fe.ModelVersionMismatchError, 409, "reindex_required", "Gallery needs a reindex"),
    (fe.KeyExistsError, 409, "key_exists", "Key name taken"),
    (fe.KeyNotFoundError, 404, "key_not_found", "Unknown key"),
    (fe.FaceNotFoundError, 404, "face_not_found", "Unknown face"),
    (fe.NoGalleryError, 503, "database_unavailable", "No gallery"),
    (fe.DatabaseError, 503, "database_unavailable", "Database unavailable"),
    (fe.ModelError, 503, "not_ready", "Model unavailable"),
]

#: HTTP status → (code, title) for errors raised by the framework itself.
STATUS_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Missing or invalid API key"),
    403: ("forbidden", "Key lacks the scope"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    408: ("request_timeout", "Request body too slow"),
    413: ("upload_too_large", "Upload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_request", "Invalid request"),
    429: ("rate_limited", "Rate limit reached"),
    503: ("overloaded", "Overloaded"),
}


class Problem(Exception):
    """An error answer: raise it anywhere in a request.

    Args:
        status: HTTP status (400–599).
        code: stable machine-readable code (``no_face``, ``forbidden``...).
        detail: one human-readable sentence about this occurrence.
        title: short summary of the code (default from :data:`STATUS_CODES`).
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
        extra: extension members added to the JSON body.
    """

    def __init__(self, status: int, code: str, detail: str, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or STATUS_CODES.get(status, (code, code))[1]
        self.headers = headers or {}
        self.extra = extra


#: Liveness challenge error codes → HTTP status.
CHALLENGE_STATUS = {"challenge_unknown": 404, "challenge_expired": 410, "challenge_used": 409,
                    "liveness_failed": 403, "liveness_face_mismatch": 403}


def from_facever_error(exc: fe.FaceverError) -> Problem:
    """The problem for a library error (unknown subclasses: 400 ``bad_request``)."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in CHALLENGE_STATUS:
        return Problem(CHALLENGE_STATUS[code], code, str(exc), "Liveness challenge refused")
    for cls, status, code, title in ERROR_MAP:
        if isinstance(exc, cls):
            headers = {"Retry-After": "5"} if status == 503 else None
            return Problem(status, code, str(exc), title, headers)
    return Problem(400, "bad_request", str(exc), "Bad request")


def problem_body(problem: Problem, instance: str) -> dict[str, Any]:
    """The JSON body of ``problem`` for the request path ``instance``."""
    return {"type": PROBLEM_TYPE + problem.code, "title": problem.title, "status": problem.status,
            "detail": problem.detail, "code": problem.code, "instance": instance, **problem.extra}


def problem_response(problem: Problem, instance: str) -> JSONResponse:
    """A ``JSONResponse`` with media type ``application/problem+json``."""
    return JSONResponse(problem_body(problem, instance), status_code=problem.status, headers=problem.headers,
                        media_type=MEDIA_TYPE)


def install_handlers(app: FastAPI) -> None:
    """Route every exception type to a problem-details answer."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(fe.FaceverError)
    async def _facever(request: Request, exc: fe.FaceverError) -> JSONResponse:
        return problem_response(from_facever_error(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errs[:5])
        return problem_response(Problem(422, "invalid_request", f"invalid request ({where})", errors=errs),
                                request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(Problem(exc.status_code, code, detail, title, dict(exc.headers or {})),
                                request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__,
                  exc_info=exc)
        return problem_response(Problem(500, "internal_error", "internal error (logged on the server)",
                                        "Internal error"), request.url.path)
