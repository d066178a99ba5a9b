"""What one worker process holds: the model (loaded once), the gallery, keys and limits.

Gallery reads and writes that touch its in-memory search index run under ``gallery_lock``; face
detection and embedding run outside it (they are the expensive part and need no shared state).
Before every gallery read the worker calls :meth:`facever.gallery.Gallery.sync` (one cheap SELECT of
the database's change counter), so a write made through any other worker or machine is seen by the
next request here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from facever.api import FaceVerifier
from facever.gallery import Gallery
from facever.keys import KeyStore
from facever.service.limits import InferenceLimiter, RateLimiter
from facever.service.settings import ServeSettings


@dataclass
class ServiceState:
    """The loaded parts of one worker (see the module docstring)."""

    settings: ServeSettings
    verifier: FaceVerifier
    gallery: Gallery
    keys: KeyStore
    limiter: InferenceLimiter
    rate: RateLimiter
    gallery_lock: threading.RLock = field(default_factory=threading.RLock)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: ServeSettings) -> "ServiceState":
        """Load the model and open the gallery (created when missing) for ``settings``.

        Raises ModelError / DatabaseError when either cannot be used.
        """
        verifier = FaceVerifier(model=settings.model)
        gallery = Gallery(settings.db, verifier=verifier, create=True, index=settings.index,  # type: ignore[arg-type]
                          actor="service")
        return cls(settings=settings, verifier=verifier, gallery=gallery, keys=KeyStore(gallery.db),
                   limiter=InferenceLimiter(settings.concurrency, settings.queue_size),
                   rate=RateLimiter(divisor=settings.workers))

    def close(self) -> None:
        """Release the database."""
        with self.gallery_lock:
            self.gallery.close()
