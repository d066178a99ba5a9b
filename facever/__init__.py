"""facever: face verification and recognition.

Public API::

    facever.embed(image) -> (128,) unit vector
    facever.verify(a, b) -> VerifyResult(.same, .distance, .threshold, .far, .frr)
    facever.FaceVerifier(model=...)   # holds a loaded model for repeated calls
    facever.Gallery(...)              # enrolled people: enroll / identify / verify_person
"""

from facever.api import FaceVerifier, VerifyResult, embed, verify
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

__version__ = "0.3.0"


def __getattr__(name: str):
    """Load :class:`facever.gallery.Gallery` lazily (it imports SQLAlchemy)."""
    if name == "Gallery":
        from facever.gallery import Gallery

        return Gallery
    raise AttributeError(f"module 'facever' has no attribute {name!r}")

__all__ = [
    "FaceVerifier", "VerifyResult", "embed", "verify",
    "FaceverError", "ImageError", "UnsupportedImageError", "ImageTooLargeError", "NoFaceError", "MultipleFacesError", "FaceQualityError", "ModelError",
    "NoModelError", "DatabaseError", "NoGalleryError", "PersonNotFoundError", "PersonExistsError", "Gallery", "DuplicateIdentityError",
    "ModelVersionMismatchError", "FaceNotFoundError", "KeyExistsError", "KeyNotFoundError", "__version__",
]
