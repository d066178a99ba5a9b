"""Typed errors raised by the facever library.

Every failure the library can foresee is a subclass of :class:`FaceverError`, so callers (and the
CLI) can catch one base class and show a one-line message. The library never prints.
"""

from __future__ import annotations


class FaceverError(Exception):
    """Base class of every error facever raises on purpose."""


class ImageError(FaceverError):
    """An image could not be read: missing, empty, corrupt, not an image, or too large."""


class UnsupportedImageError(ImageError):
    """The data is not an image in a supported format (a service answers 415)."""


class ImageTooLargeError(ImageError):
    """An image has more pixels (or bytes) than the decoder's cap: a decompression bomb, say (413)."""


class NoFaceError(FaceverError):
    """No face was found in an image."""


class MultipleFacesError(FaceverError):
    """Several faces were found where the face policy ``"one"`` asked for exactly one."""


class FaceQualityError(FaceverError):
    """A face was found but is below the quality bar (too small, too blurry)."""


class ModelError(FaceverError):
    """A model bundle is missing, unreadable, or incompatible with this facever."""


class NoModelError(ModelError):
    """No trained model is available (none shipped, none given)."""


class DatabaseError(FaceverError):
    """The gallery database is unreachable, corrupt, read-only or from a newer facever."""


class PersonNotFoundError(FaceverError):
    """A person name is not enrolled in the gallery."""


class DuplicateIdentityError(FaceverError):
    """A new face is closer than the threshold to another enrolled person."""


class ModelVersionMismatchError(FaceverError):
    """Stored embeddings were made by another model version than the one loaded."""


class PersonExistsError(FaceverError, ValueError):
    """A person name is already enrolled (on rename or explicit create)."""


class NoGalleryError(DatabaseError):
    """A command that only reads the gallery found no database there (it never creates one)."""


class FaceNotFoundError(FaceverError):
    """A face id is not one of the named person's enrolled faces."""


class KeyExistsError(FaceverError):
    """An API key name is taken (names of revoked keys are never reused)."""


class KeyNotFoundError(FaceverError):
    """No API key has that name."""
