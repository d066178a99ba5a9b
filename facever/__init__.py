"""facever: face verification and recognition.

Public API::

    facever.embed(image) -> (128,) unit vector
    facever.verify(a, b) -> VerifyResult(.same, .distance, .threshold, .far, .frr)
    facever.FaceVerifier(model=...)   # holds a loaded model for repeated calls
    facever.Gallery(...)              # enrolled people: enroll / identify / verify_person
"""

from typing import TYPE_CHECKING

from facever.errors import (
    DatabaseError,
    DuplicateIdentityError,
    FaceNotFoundError,
    FaceQualityError,
    FaceverError,
    ImageError,
    ImageTooLargeError,
    KeyExistsError,
    KeyNotFoundError,
    ModelError,
    ModelVersionMismatchError,
    MultipleFacesError,
    NoFaceError,
    NoGalleryError,
    NoModelError,
    PersonExistsError,
    PersonNotFoundError,
    UnsupportedImageError,
)

if TYPE_CHECKING:
    from facever.api import FaceVerifier, VerifyResult, embed, verify
    from facever.gallery import Gallery

__version__ = "0.3.0"

_LAZY = {"FaceVerifier": "facever.api", "VerifyResult": "facever.api", "embed": "facever.api", "verify": "facever.api",
         "Gallery": "facever.gallery"}


def __getattr__(name: str):
    """Load the API (NumPy, OpenCV, onnxruntime) and :class:`facever.gallery.Gallery` (SQLAlchemy) on
    first use: ``import facever.errors`` or an early error of a command stays cheap."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facever' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "FaceVerifier", "VerifyResult", "embed", "verify",
    "FaceverError", "ImageError", "UnsupportedImageError", "ImageTooLargeError", "NoFaceError", "MultipleFacesError", "FaceQualityError", "ModelError",
    "NoModelError", "DatabaseError", "NoGalleryError", "PersonNotFoundError", "PersonExistsError", "Gallery", "DuplicateIdentityError",
    "ModelVersionMismatchError", "FaceNotFoundError", "KeyExistsError", "KeyNotFoundError", "__version__",
]
