"""Enrolment in two halves (what `facever serve` does): prepare touches nothing, commit writes once."""

from __future__ import annotations

import pytest
from conftest import numpy_verifier, person_image, png_bytes

from facever.errors import DuplicateIdentityError
from facever.gallery import Gallery


def img(person: int, variant: int = 1) -> bytes:
    return png_bytes(person_image(person, variant))


def test_prepare_writes_nothing_and_commit_writes_once(tmp_path):
    with Gallery(f"sqlite:///{tmp_path / 'g.db'}", verifier=numpy_verifier()) as g:
        prepared = g.prepare_enrolment("Ada", [img(1, 1), img(1, 2), b"not an image"], labels=["a", "b", "c"])
        assert g.people() == [] and len(prepared.pending) == 2 and prepared.vectors.shape[0] == 2
        report = g.commit_enrolment(prepared)
        assert (report.enrolled, report.rejected) == (2, 1) and [o.source for o in report.outcomes] == ["a", "b", "c"]
        assert g.people()[0].n_faces == 2


def test_a_write_between_the_halves_is_seen_by_commit(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with Gallery(url, verifier=numpy_verifier()) as g, Gallery(url, verifier=numpy_verifier()) as other:
        prepared = g.prepare_enrolment("Ada", [img(1, 1)])
        other.enroll("Ada", [img(1, 1)])          # the same photo, enrolled meanwhile by another process
        report = g.commit_enrolment(prepared)
        assert report.enrolled == 0 and report.skipped == 1
        prepared = g.prepare_enrolment("Someone Else", [img(2, 1)])
        other.enroll("Bob", [img(2, 2)])           # the same person, enrolled meanwhile under another name
        g.sync()
        with pytest.raises(DuplicateIdentityError):
            g.commit_enrolment(prepared)
        assert sorted(p.name for p in g.people()) == ["Ada", "Bob"]
