"""P×K batch sampler."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from facever.training.sampling import PKSampler

# identity → number of images: 6 identities with ≥2 images (one with fewer than K=4), 4 singletons
COUNTS = {10: 6, 11: 5, 12: 4, 13: 3, 14: 2, 15: 7, 20: 1, 21: 1, 22: 1, 23: 1}


def make_labels(seed: int = 0) -> np.ndarray:
    labels = np.concatenate([np.full(n, ident) for ident, n in COUNTS.items()])
    return np.random.default_rng(seed).permutation(labels)


def test_batch_shape_and_pk_structure():
    labels = make_labels()
    sampler = PKSampler(labels, p=3, k=4, seed=1)
    assert sampler.batch_size == 12
    for batch in itertools.islice(sampler, 50):
        assert batch.shape == (12,) and batch.dtype == np.int64
        counts = Counter(labels[batch].tolist())
        assert len(counts) == 3 and set(counts.values()) == {4}
        for ident in counts:
            assert COUNTS[ident] >= 2
            chosen = batch[labels[batch] == ident]
            if COUNTS[ident] >= 4:
                assert len(set(chosen.tolist())) == 4  # distinct images
            else:
                assert set(chosen.tolist()) == set(np.flatnonzero(labels == ident).tolist())  # all of them


def test_every_eligible_identity_is_drawn_and_no_singleton():
    labels = make_labels()
    sampler = PKSampler(labels, p=2, k=2, seed=0)
    seen = set()
    for _ in range(200):
        seen |= set(labels[sampler.sample_batch()].tolist())
    assert seen == {i for i, n in COUNTS.items() if n >= 2}


def test_extra_singletons_come_from_outside_the_p_identities():
    labels = make_labels()
    sampler = PKSampler(labels, p=2, k=4, seed=3, extra_singletons=3)
    assert sampler.batch_size == 11
    for _ in range(50):
        batch = sampler.sample_batch()
        assert batch.shape == (11,)
        pk, extra = batch[:8], batch[8:]
        assert not set(labels[extra].tolist()) & set(labels[pk].tolist())
        assert len(set(extra.tolist())) == 3


def test_extras_when_every_identity_is_in_the_batch():
    labels = np.repeat([0, 1, 2], 3)
    batch = PKSampler(labels, p=3, k=2, seed=0, extra_singletons=2).sample_batch()
    assert batch.shape == (8,)
    assert len(set(batch[6:].tolist()) & set(batch[:6].tolist())) == 0  # images not yet in the batch


def test_seed_reproduces():
    labels = make_labels()
    a = PKSampler(labels, 3, 3, seed=7, extra_singletons=2)
    b = PKSampler(labels, 3, 3, seed=7, extra_singletons=2)
    c = PKSampler(labels, 3, 3, seed=8, extra_singletons=2)
    batches_a = [a.sample_batch() for _ in range(5)]
    assert all(np.array_equal(x, b.sample_batch()) for x in batches_a)
    assert not all(np.array_equal(x, c.sample_batch()) for x in batches_a)


def test_rng_state_restores_sequence():
    sampler = PKSampler(make_labels(), 3, 2, seed=0)
    sampler.sample_batch()
    state = sampler.rng.bit_generator.state
    first = sampler.sample_batch()
    sampler.rng.bit_generator.state = state
    assert np.array_equal(first, sampler.sample_batch())


def test_batches_per_epoch():
    sampler = PKSampler(make_labels(), p=2, k=4, seed=0)
    eligible_images = sum(n for n in COUNTS.values() if n >= 2)  # 27
    assert sampler.batches_per_epoch == int(np.ceil(eligible_images / 8)) == 4


def test_too_few_identities_raises():
    with pytest.raises(ValueError, match=r"p=7 .* only 6 of 10 identities"):
        PKSampler(make_labels(), p=7, k=2)
    with pytest.raises(ValueError, match="only 0 of 3"):
        PKSampler([1, 2, 3], p=1, k=2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        PKSampler(make_labels(), p=0, k=2)
    with pytest.raises(ValueError):
        PKSampler(make_labels(), p=2, k=2, extra_singletons=-1)
