"""The gallery: enrolled people in a database, searched 1:K (identification).

>>> from facever.gallery import Gallery
>>> with Gallery() as g:                                         # doctest: +SKIP
...     g.enroll("Ada Lovelace", ["ada1.jpg", "ada2.jpg"])
...     [r.person for r in g.identify("group.jpg")]             # e.g. ['Ada Lovelace', None]

Distances are Euclidean between unit embeddings, in [0, 2]. A person's score against a query face
is the distance to their *nearest* enrolled face (``scoring="nearest"``) or the mean distance to
their three nearest faces (``"mean3"``). A face is identified as the best-scoring person when that
score is ≤ the identification threshold, and is ``unknown`` (``person=None``) otherwise.

The threshold follows the gallery: with open-set data in the model bundle it is the distance at
which a stranger is named as someone with the target probability (FPIR, 1% by default) given how
many people and faces are enrolled (:mod:`facever.open_set`); without it, the model's fixed
identification threshold, else its verification τ. Every result states the threshold, how it was
chosen and the FPIR it gives.

Search runs in memory (the exact matrix, or faiss HNSW beside it) or, on PostgreSQL with pgvector,
inside the database with no copy in the process (``index="pgvector"``, or ``"auto"`` there).

Where things are:

* :mod:`facever.gallery.core`: :class:`Gallery`, which wires the parts below (identify, verify_person, reindex).
* :mod:`facever.gallery.index`: the :class:`SearchBackend` protocol, :class:`IndexStatus`;
  :mod:`facever.gallery.backends`: :func:`open_backend`.
* :mod:`facever.gallery.memory_index`: the exact matrix backend, with faiss (:mod:`facever.gallery.ann_index`).
* :mod:`facever.gallery.pg_index`: the pgvector backend (HNSW in PostgreSQL, candidates re-scored exactly).
* :mod:`facever.gallery.enrolment`: :class:`Enrolment` (detect, check, deduplicate, write).
* :mod:`facever.gallery.thresholds`: :class:`ThresholdPolicy` (identification threshold, duplicate gate).
* :mod:`facever.gallery.management`: people pages, person details, rename, remove a person or a face.
* :mod:`facever.gallery.records`: name rules, crop PNG encoding, image reading and hashing.
* :mod:`facever.gallery.search`: :class:`SearchIndex`, :func:`person_distances`, :func:`nearest_k`.
* :mod:`facever.gallery.policy`: :class:`ThresholdChoice`, identification threshold and duplicate gate rules.
* :mod:`facever.gallery.results`: the result dataclasses (``to_dict()`` = the CLI's ``--json``).
* :mod:`facever.gallery.folders`: :func:`person_folders`, :func:`image_files`, :data:`IMAGE_SUFFIXES`.
"""

from facever.errors import NoGalleryError, PersonExistsError
from facever.gallery.core import Gallery
from facever.gallery.enrolment import MIN_FACE_SIZE, MIN_SHARPNESS, Enrolment, Progress
from facever.gallery.backends import open_backend
from facever.gallery.index import GalleryCounts, Hits, IndexMode, IndexStatus, IndexUnavailableError, SearchBackend
from facever.gallery.records import check_name, decode_png, encode_png
from facever.gallery.folders import IMAGE_SUFFIXES, image_files, person_folders
from facever.gallery.policy import ThresholdChoice, duplicate_gate, identification_threshold
from facever.gallery.results import (Candidate, EnrollReport, FaceSummary, IdentifyResult, ImageOutcome, LookAlike,
                                     PersonDetail, PersonSummary, ReindexReport)
from facever.gallery.search import Scoring, SearchIndex, nearest_k, person_distances
from facever.gallery.thresholds import ThresholdPolicy

__all__ = [
    "Gallery", "SearchIndex", "person_distances", "nearest_k", "Scoring", "Progress",
    "ThresholdChoice", "identification_threshold", "duplicate_gate",
    "ImageOutcome", "EnrollReport", "LookAlike", "Candidate", "IdentifyResult", "PersonSummary", "FaceSummary", "PersonDetail",
    "ReindexReport", "IMAGE_SUFFIXES", "person_folders", "image_files", "check_name", "encode_png", "decode_png",
    "MIN_FACE_SIZE", "MIN_SHARPNESS", "PersonExistsError", "NoGalleryError",
    "SearchBackend", "IndexStatus", "IndexMode", "IndexUnavailableError", "Hits", "GalleryCounts", "open_backend",
    "Enrolment", "ThresholdPolicy",
]
