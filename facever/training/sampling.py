"""P×K batch sampling over identity labels for triplet training with online mining."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["PKSampler"]


class PKSampler:
    """Draws batches of ``P`` identities × ``K`` images, plus optional extra negatives.

    Only identities with at least two images are eligible as one of the ``P`` identities, so every
    anchor of the P×K part has a positive. For each of them ``K`` distinct images are drawn (without
    replacement) when the identity has at least ``K``; otherwise all of its images are taken and the
    rest is filled with repeats. ``extra_singletons`` more images are then drawn, without replacement
    where possible, from the images whose identity is not among the ``P`` (for example people with a
    single image), to serve as extra negatives. Should no such image exist (every identity is in the
    batch) they are drawn from the images not yet in the batch, or failing that from all images.

    Args:
        labels: ``(N,)`` integer identity label of each image.
        p: identities per batch.
        k: images per identity.
        seed: seed of ``np.random.default_rng``; ``None`` for a fresh entropy seed.
        extra_singletons: extra images per batch from outside the ``P`` identities.

    Raises:
        ValueError: if fewer than ``p`` identities have two or more images, or an argument is out of range.

    The generator is kept in ``rng`` so its ``bit_generator.state`` can be checkpointed.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, p: int, k: int, seed: int | None = 0,
                 extra_singletons: int = 0) -> None:
        self.labels = np.asarray(labels).reshape(-1)
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be positive, got p={p}, k={k}")
        if extra_singletons < 0:
            raise ValueError(f"extra_singletons must be >= 0, got {extra_singletons}")
        self.p, self.k, self.extra_singletons = int(p), int(k), int(extra_singletons)
        self.rng = np.random.default_rng(seed)

        ids, inverse, counts = np.unique(self.labels, return_inverse=True, return_counts=True)
        eligible = counts >= 2
        if eligible.sum() < self.p:
            raise ValueError(
                f"PKSampler needs at least p={self.p} identities with 2 or more images, but only "
                f"{int(eligible.sum())} of {len(ids)} identities ({len(self.labels)} images) have that")
        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.cumsum(counts)[:-1])
        self._identity_of = inverse  # image -> identity position in ``ids``
        self.identities = ids[eligible]
        self._groups = [g for g, ok in zip(groups, eligible) if ok]
        self._eligible_positions = np.flatnonzero(eligible)
        self._num_eligible_images = int(counts[eligible].sum())

    @property
    def batch_size(self) -> int:
        """Indices per batch: ``p * k + extra_singletons``."""
        return self.p * self.k + self.extra_singletons

    @property
    def batches_per_epoch(self) -> int:
        """``ceil(images of eligible identities / (p * k))``."""
        return math.ceil(self._num_eligible_images / (self.p * self.k))

    def sample_batch(self) -> np.ndarray:
        """One batch: ``(p * k + extra_singletons,)`` int64 image indices, grouped by identity, extras last."""
        chosen = self.rng.choice(len(self._groups), size=self.p, replace=False)
        parts = []
        for c in chosen:
            group = self._groups[c]
            if len(group) >= self.k:
                parts.append(self.rng.choice(group, size=self.k, replace=False))
            else:
                fill = self.rng.choice(group, size=self.k - len(group), replace=True)
                parts.append(self.rng.permutation(np.concatenate([group, fill])))
        batch = np.concatenate(parts)
        if self.extra_singletons:
            batch = np.concatenate([batch, self._extras(chosen, batch)])
        return batch.astype(np.int64)

    def _extras(self, chosen: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """``extra_singletons`` indices, preferring images whose identity is not in ``chosen``."""
        outside = ~np.isin(self._identity_of, self._eligible_positions[chosen])
        pool = np.flatnonzero(outside)
        if pool.size == 0:
            pool = np.setdiff1d(np.arange(len(self.labels)), batch)
        if pool.size == 0:
            pool = np.arange(len(self.labels))
        n = self.extra_singletons
        return self.rng.choice(pool, size=n, replace=pool.size < n)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield batches forever."""
        while True:
            yield self.sample_batch()
