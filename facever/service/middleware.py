"""The ASGI layer in front of the routes: body limits and timeouts, person-name paths, access log, headers.

:class:`Guard` reads a request body completely *before* the app sees it (so a client trickling its
body never holds an inference slot), refuses one larger than the route allows (413) or slower than
``body_timeout_s`` (408), restores percent-encoded slashes in person names, logs one line per request
(method, path, status, milliseconds, key name; never the key, the query string or any bytes) and adds
security headers to every answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable
from urllib.parse import quote, unquote

from facever.service.problems import Problem, problem_body

log = logging.getLogger("facever.service.access")

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: Multipart overhead allowed on top of the images, bytes.
FORM_OVERHEAD = 256 * 1024

#: Longest path written to the access log, characters (longer ones are cut, control characters escaped).
LOGGED_PATH_MAX = 200

#: Largest liveness answer: 60 frames of at most 1 MB (see :mod:`facever.service.routes_liveness`).
LIVENESS_LIMIT = 60 * 10**6 + FORM_OVERHEAD

#: Largest JSON body (rename, key creation), bytes.
JSON_LIMIT = 64 * 1024

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
     b"style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
]


def body_limit(method: str, path: str, max_upload: int, max_images: int) -> int:
    """Largest body, bytes, for a request: enrolment takes ``max_images`` images, verify two, others one."""
    if method not in ("POST", "PUT", "PATCH"):
        return JSON_LIMIT
    if path.startswith("/v1/people/") and path.endswith("/faces"):
        return max_images * max_upload + FORM_OVERHEAD
    if path == "/v1/verify":
        return 2 * max_upload + FORM_OVERHEAD
    if path.startswith("/v1/liveness/") and path != "/v1/liveness/challenge":
        return LIVENESS_LIMIT
    if path in ("/v1/identify",) or path.endswith("/verify"):
        return max_upload + FORM_OVERHEAD
    return JSON_LIMIT


def person_path(raw_path: bytes) -> str | None:
    """For ``/v1/people/<segment>/...``, the path with the person segment decoded except for ``/``
    and ``%`` (kept as ``%2F``/``%25``, so a name holding a slash stays one path segment)."""
    if not raw_path.startswith(b"/v1/people/"):
        return None
    parts = raw_path.split(b"/")
    try:
        decoded = [unquote(p.decode("ascii"), errors="strict") for p in parts]
    except (UnicodeDecodeError, ValueError):
        return None
    decoded[3] = quote(decoded[3], safe="".join(chr(c) for c in range(0x20, 0x7f) if chr(c) not in "/%?#"))
    return "/".join(decoded)


class Guard:
    """ASGI middleware: see the module docstring.

    Args:
        app: the wrapped ASGI app.
        max_upload: largest image, bytes.
        max_images: most images in one enrolment.
        body_timeout_s: seconds allowed for the whole body to arrive.
    """

    def __init__(self, app: ASGIApp, max_upload: int, max_images: int, body_timeout_s: float) -> None:
        self.app = app
        self.max_upload = max_upload
        self.max_images = max_images
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        scope.setdefault("state", {})
        status = {"code": 0}
        fixed = person_path(scope.get("raw_path") or scope["path"].encode())
        if fixed is not None:
            scope["path"] = fixed

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        try:
            replay = await self._read_body(scope, receive)
        except Problem as problem:
            await self._send_problem(scope, send_logged, problem)
        else:
            await self.app(scope, replay, send_logged)
        finally:
            ms = (time.perf_counter() - start) * 1000
            key = scope["state"].get("key_name", "-")
            path = scope["path"] if len(scope["path"]) <= LOGGED_PATH_MAX else scope["path"][:LOGGED_PATH_MAX] + "..."
            log.info('%s %s %d %.1fms key=%s', scope["method"], path.encode("unicode_escape").decode("ascii"),
                     status["code"], ms, key)

    async def _read_body(self, scope: Scope, receive):
        """Buffer the body within the limits; a ``receive`` that replays it."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return receive
        limit = body_limit(scope["method"], scope["path"], self.max_upload, self.max_images)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise Problem(413, "upload_too_large", f"request body of {int(declared)} bytes exceeds the "
                                  f"limit of {limit} bytes for this route (images: at most {self.max_upload} bytes each)")
            except ValueError:
                raise Problem(400, "bad_request", "invalid Content-Length header") from None
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.body_timeout_s
        more = True
        while more:
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except asyncio.TimeoutError:
                raise Problem(408, "request_timeout", f"the request body did not arrive within "
                              f"{self.body_timeout_s:g} s") from None
            if message["type"] == "http.disconnect":
                raise Problem(400, "bad_request", "client disconnected")
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                raise Problem(413, "upload_too_large", f"request body exceeds the limit of {limit} bytes for this "
                              f"route (images: at most {self.max_upload} bytes each)")
            chunks.append(body)
            more = message.get("more_body", False)
        data = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    async def _send_problem(scope: Scope, send, problem: Problem) -> None:
        import json

        body = json.dumps(problem_body(problem, scope["path"])).encode()
        headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
        await send({"type": "http.response.start", "status": problem.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
