"""A small Python client of ``facever serve``, mirroring :class:`~facever.api.FaceVerifier` and
:class:`~facever.gallery.Gallery` (standard library only: no extra dependency).

>>> from facever.client import Client
>>> c = Client("http://127.0.0.1:8000", key="fv_...")        # doctest: +SKIP
>>> c.verify("a.jpg", "b.jpg").same                          # doctest: +SKIP
>>> [f.person for f in c.identify("group.jpg")]              # doctest: +SKIP

Errors come back as the library's typed errors (``NoFaceError``, ``PersonNotFoundError``...) when
the service names one, else :class:`ServiceError` with the HTTP ``status`` and problem ``code``.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facever import errors as fe
from facever.alignment import CropQuality
from facever.api import VerifyResult
from facever.detection import Face
from facever.gallery.results import Candidate, EnrollReport, IdentifyResult, ImageOutcome, LookAlike, PersonSummary

ImageInput = "str | os.PathLike[str] | bytes | np.ndarray"

#: Problem ``code`` → the library's error class.
ERRORS: dict[str, type[fe.FaceverError]] = {
    "bad_image": fe.ImageError, "unsupported_media_type": fe.UnsupportedImageError,
    "no_face": fe.NoFaceError, "multiple_faces": fe.MultipleFacesError, "face_quality": fe.FaceQualityError,
    "person_not_found": fe.PersonNotFoundError, "duplicate_identity": fe.DuplicateIdentityError,
    "person_exists": fe.PersonExistsError, "reindex_required": fe.ModelVersionMismatchError,
    "database_unavailable": fe.DatabaseError,
}


class ServiceError(fe.FaceverError):
    """An error answer of the service: ``status`` (HTTP), ``code`` (problem code), ``problem`` (the body)."""

    def __init__(self, message: str, status: int, code: str, problem: dict[str, Any]) -> None:
        super().__init__(message)
        self.status, self.code, self.problem = status, code, problem


class Client:
    """A connection to one service.

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8000``.
        key: API key (sent as ``Authorization: Bearer``); None for a ``--no-auth`` service.
        timeout: seconds per request.
    """

    def __init__(self, url: str, key: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    # -- faces ------------------------------------------------------------------------------------
    def verify(self, image_a, image_b) -> VerifyResult:
        """1:1: are the largest faces of two images the same person? (scope ``verify``)"""
        body = self._post("/v1/verify", files=[("image1", image_a, 0), ("image2", image_b, 1)])
        return _verify_result(body)

    def verify_person(self, image, name: str) -> VerifyResult:
        """Is the largest face of ``image`` the enrolled person ``name``? (scope ``identify``)"""
        return _verify_result(self._post(f"/v1/people/{_seg(name)}/verify", files=[("image", image, 0)]))

    def identify(self, image, top_k: int = 5, fpir: float | None = None,
                 faces: str = "all") -> list[IdentifyResult]:
        """Every face of ``image`` against the gallery, largest first (scope ``identify``)."""
        params = {"top_k": top_k, "faces": faces, **({"fpir": fpir} if fpir is not None else {})}
        body = self._post("/v1/identify", files=[("image", image, 0)], params=params)
        return [_identify_result(f) for f in body["faces"]]

    def enroll(self, name: str, images: Sequence, allow_duplicate: bool = False,
               force: bool = False) -> EnrollReport:
        """Enrol images of one person in one transaction (scope ``enroll``)."""
        params = {"allow_duplicate": str(allow_duplicate).lower(), "force": str(force).lower()}
        body = self._post(f"/v1/people/{_seg(name)}/faces", files=[("images", im, i) for i, im in enumerate(images)],
                          params=params)
        outcomes = [ImageOutcome(o["source"], o["status"], o.get("reason", ""), o.get("sha256", ""),
                                 o.get("face_id"), _face(o.get("face")), _quality(o.get("quality")))
                    for o in body["images"]]
        look_alikes = [LookAlike(a["name"], a["distance"], a["threshold"], a.get("source", ""))
                       for a in body.get("look_alikes", [])]
        return EnrollReport(person=body["person"], outcomes=outcomes, error=body.get("error"), look_alikes=look_alikes)

    # -- people -----------------------------------------------------------------------------------
    def people(self, query: str | None = None, page_size: int = 500) -> list[PersonSummary]:
        """Every enrolled person (optionally whose name contains ``query``), by name (scope ``identify``)."""
        from datetime import datetime

        found: list[PersonSummary] = []
        while True:
            params: dict[str, Any] = {"offset": len(found), "limit": page_size, **({"q": query} if query else {})}
            body = self._request("GET", "/v1/people", params=params)
            found += [PersonSummary(p["name"], p["faces"], datetime.fromisoformat(p["created"])) for p in body["people"]]
            if len(found) >= body["total"] or not body["people"]:
                return found

    def person(self, name: str) -> dict[str, Any]:
        """One person and their faces, as JSON (scope ``identify``)."""
        return self._request("GET", f"/v1/people/{_seg(name)}")

    def rename(self, old: str, new: str) -> None:
        """Rename a person (scope ``admin``)."""
        self._request("PATCH", f"/v1/people/{_seg(old)}", json_body={"name": new})

    def remove(self, name: str) -> int:
        """Erase a person; the number of faces removed (scope ``admin``)."""
        return int(self._request("DELETE", f"/v1/people/{_seg(name)}")["faces_removed"])

    def model(self) -> dict[str, Any]:
        """The service's model: version, τ and its calibration."""
        return self._request("GET", "/v1/model")

    # -- transport --------------------------------------------------------------------------------
    def _post(self, path: str, files: list, params: dict | None = None) -> dict[str, Any]:
        boundary = secrets.token_hex(16)
        parts = []
        for field, image, i in files:
            data, filename = _encode(image, i)
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                         f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                         + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self._request("POST", path, params=params, data=body,
                             content_type=f"multipart/form-data; boundary={boundary}")

    def _request(self, method: str, path: str, params: dict | None = None, data: bytes | None = None,
                 content_type: str | None = None, json_body: Any = None) -> dict[str, Any]:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the user's own URL
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise _error(exc) from None
        except urllib.error.URLError as exc:
            raise ServiceError(f"{self.url}: cannot reach the service ({exc.reason})", 0, "unreachable", {}) from None


def _seg(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _encode(image, i: int) -> tuple[bytes, str]:
    """Upload bytes and a file name for a path, encoded bytes or an RGB array."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        return path.read_bytes(), path.name.replace('"', "_")
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), f"image{i + 1}"
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise fe.ImageError(f"array #{i + 1}: cannot encode as PNG")
    return buf.tobytes(), f"image{i + 1}.png"


def _error(exc: urllib.error.HTTPError) -> fe.FaceverError:
    try:
        problem = json.loads(exc.read() or b"{}")
    except ValueError:
        problem = {}
    code = problem.get("code", "http_error")
    message = problem.get("detail") or f"HTTP {exc.code}"
    cls = ERRORS.get(code)
    return cls(message) if cls is not None else ServiceError(message, exc.code, code, problem)


def _face(data: dict[str, Any] | None) -> Face | None:
    return None if data is None else Face.from_dict(data)


def _quality(data: dict[str, Any] | None) -> CropQuality | None:
    return None if data is None else CropQuality.from_dict(data)


def _verify_result(body: dict[str, Any]) -> VerifyResult:
    return VerifyResult(same=body["same"], distance=body["distance"], threshold=body["threshold"], far=body.get("far"),
                        frr=body.get("frr"), probability=body.get("probability"),
                        model_version=body.get("model_version", ""),
                        faces=[Face.from_dict(f) for f in body.get("faces", [])])


def _identify_result(f: dict[str, Any]) -> IdentifyResult:
    return IdentifyResult(person=f["person"], distance=f["distance"], threshold=f["threshold"],
                          candidates=[Candidate(c["person"], c["distance"]) for c in f["candidates"]],
                          face=_face(f.get("face")), quality=_quality(f.get("quality")),
                          scoring=f.get("scoring", "nearest"),
                          model_version=f.get("model_version", ""), threshold_policy=f.get("threshold_policy", ""),
                          expected_fpir=f.get("expected_fpir"), fpir_target=f.get("fpir_target"))
