"""How an embedding is stored as bytes: ``D`` little-endian float32 values (NumPy only).

Shared by the repository (the ``vector`` bytes column) and the pgvector helpers, which fill both the
bytes and the ``vector(128)`` column from the same values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def encode_vector(vector: np.ndarray) -> bytes:
    """A ``(D,)`` vector as ``D`` little-endian float32 values (``4 D`` bytes)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored vector blobs → an ``(N, dim)`` float32 array (native byte order)."""
    if not blobs:
        return np.zeros((0, dim), np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype="<f4")
    if flat.size != len(blobs) * dim:
        raise ValueError(f"stored vectors do not all have {dim} values")
    return flat.astype(np.float32).reshape(len(blobs), dim)
