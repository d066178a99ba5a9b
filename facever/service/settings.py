"""What one ``facever serve`` process needs to know: bind address, database, model, limits.

The settings travel to uvicorn's worker processes as JSON in the ``FACEVER_SERVE_SETTINGS``
environment variable (each worker builds its own app from them, see :func:`facever.service.app.app_from_env`).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field

#: Environment variable carrying the JSON settings to worker processes.
SETTINGS_ENV = "FACEVER_SERVE_SETTINGS"

#: Default largest accepted image, bytes (10 MB).
DEFAULT_MAX_UPLOAD = 10 * 10**6

#: Most images one enrolment request may carry.
MAX_ENROL_IMAGES = 20


def default_concurrency() -> int:
    """Inference slots per worker by default: the number of usable CPU cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def is_loopback(host: str) -> bool:
    """True when ``host`` only binds the local machine (127.0.0.0/8, ::1 or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    """Settings of one service.

    Attributes:
        host, port: bind address (loopback by default).
        db: SQLAlchemy URL of the gallery (None: ``FACEVER_DB`` or SQLite in ``FACEVER_HOME``).
        model: model bundle directory (None: the default model).
        workers: uvicorn worker processes.
        no_auth: accept requests without keys (loopback binds only); every request acts as ``local``.
        max_upload: largest accepted image, bytes.
        concurrency: inferences run at once per worker (threads; default: the core count).
        queue: requests allowed to wait for an inference slot per worker (default: ``concurrency``);
            past that a request is answered 503 with Retry-After at once.
        body_timeout_s: a request body must arrive within this many seconds (else 408).
        cors_origins: origins allowed by CORS (none: CORS off).
        index: gallery search backend (``exact``, ``ann``, ``pgvector`` or ``auto``).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    db: str | None = None
    model: str | None = None
    workers: int = 1
    no_auth: bool = False
    max_upload: int = DEFAULT_MAX_UPLOAD
    concurrency: int = field(default_factory=default_concurrency)
    queue: int | None = None
    body_timeout_s: float = 30.0
    cors_origins: list[str] = field(default_factory=list)
    index: str = "auto"

    @property
    def queue_size(self) -> int:
        """Waiting places per worker."""
        return self.concurrency if self.queue is None else self.queue

    def check(self) -> None:
        """Raise ValueError (one line) for settings that must not start a service."""
        if self.no_auth and not is_loopback(self.host):
            raise ValueError(f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1), not {self.host}; "
                             "create a key with `facever keys create NAME --scope ...` instead")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be between 1 and 65535, not {self.port}")
        if self.workers < 1 or self.concurrency < 1 or self.queue_size < 0:
            raise ValueError("--workers and --concurrency must be at least 1, --queue at least 0")
        if self.max_upload < 1024:
            raise ValueError(f"--max-upload must be at least 1024 bytes, not {self.max_upload}")

    def to_env(self) -> str:
        """JSON for :data:`SETTINGS_ENV`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServeSettings":
        """Settings from :data:`SETTINGS_ENV` (defaults when unset)."""
        raw = os.environ.get(SETTINGS_ENV)
        return cls(**json.loads(raw)) if raw else cls()
