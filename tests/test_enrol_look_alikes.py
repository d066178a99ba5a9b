"""Enrolment warns (never refuses) when a new face is within the identification threshold of
someone already enrolled: the Python API's ``EnrollReport.look_alikes``.

Real faces that packages ship (service_photos.py) with the shipped model: a second, worse photo of
Eileen Collins under a new name is past the strict duplicate gate, so it is enrolled, but
identification would name her for it: the report must say so. Grace Hopper is someone else: no
warning. Synthetic faces (conftest.py) cover the duplicate override and a person's own faces.
"""

from __future__ import annotations

import pytest
from conftest import numpy_verifier, person_image, png_bytes

import service_photos as photos
from facever.api import FaceVerifier
from facever.gallery import Gallery, LookAlike

EILEEN = "Eileen Collins"


@pytest.fixture(scope="module")
def verifier():
    return FaceVerifier()  # the shipped model


def test_a_second_photo_under_a_new_name_is_enrolled_with_a_warning_naming_the_first(tmp_path, verifier):
    with Gallery(f"sqlite:///{tmp_path / 'g.db'}", verifier=verifier) as g:
        assert g.enroll(EILEEN, [photos.astronaut()]).look_alikes == []
        threshold = g.threshold_for().threshold  # the identification threshold before the next enrolment
        gate = g.duplicate_threshold().threshold
        report = g.enroll("E. Collins", [photos.astronaut_degraded()])
        assert report.enrolled == 1 and report.ok  # a warning, not a refusal
        assert len(report.look_alikes) == 1
        alike = report.look_alikes[0]
        assert alike.name == EILEEN and alike.source == "<bytes #1>"
        assert alike.threshold == pytest.approx(threshold)
        assert gate < alike.distance <= threshold  # past the strict gate, within identification's reach
        # the distance is the one verification sees between the two photos
        assert alike.distance == pytest.approx(verifier.verify(photos.astronaut(), photos.astronaut_degraded()).distance,
                                               abs=1e-4)
        assert report.to_dict()["look_alikes"] == [alike.to_dict()]
        assert set(alike.to_dict()) == {"name", "distance", "threshold", "source"}


def test_a_different_person_brings_no_warning(tmp_path, verifier):
    with Gallery(f"sqlite:///{tmp_path / 'g.db'}", verifier=verifier) as g:
        g.enroll(EILEEN, [photos.astronaut()])
        report = g.enroll("Grace Hopper", [photos.hopper()])
        assert report.enrolled == 1 and report.look_alikes == [] and report.to_dict()["look_alikes"] == []


def test_more_faces_of_an_existing_person_never_warn_about_that_person(tmp_path, verifier):
    with Gallery(f"sqlite:///{tmp_path / 'g.db'}", verifier=verifier) as g:
        g.enroll(EILEEN, [photos.astronaut()])
        g.enroll("Grace Hopper", [photos.hopper()])
        report = g.enroll(EILEEN, [photos.astronaut_degraded(), photos.astronaut_mirrored()])
        assert report.enrolled == 2 and report.look_alikes == []


def img(person: int, variant: int = 1) -> bytes:
    return png_bytes(person_image(person, variant))


def test_an_allowed_duplicate_is_enrolled_with_a_warning(db_url):
    """The duplicate gate is stricter than identification: overriding it still warns, nearest first,
    one entry per person, only about faces that were written."""
    with Gallery(db_url, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1)])
        g.enroll("bob", [img(2, 1)])
        report = g.enroll("annabel", [img(3, 1), img(1, 2), img(1, 3), img(2, 2)], allow_duplicate=True)
        assert report.enrolled == 4
        assert sorted(a.name for a in report.look_alikes) == ["ann", "bob"]
        distances = [a.distance for a in report.look_alikes]
        assert distances == sorted(distances)
        ann = next(a for a in report.look_alikes if a.name == "ann")
        assert ann.source in ("<bytes #2>", "<bytes #3>") and 0 <= ann.distance < ann.threshold
        assert isinstance(ann, LookAlike)
        # the same photos again are skipped, not written: nothing new, so no warning
        assert g.enroll("annabel", [img(1, 2)], allow_duplicate=True).look_alikes == []
        # ann's own new face names annabel (someone else), never ann
        more = g.enroll("ann", [img(1, 4)], allow_duplicate=True)
        assert [a.name for a in more.look_alikes] == ["annabel"]
