"""Domains of the leave-one-domain-out open-set benchmark (``open_set_lodo.py``) and their embedding cache.

Each domain is a list of people (never trained on, except where flagged) with their image paths;
each is embedded once with the shipped model (or ``--model``) through facever's pipeline and cached
as ``CACHE/<domain>.npz`` (``names``, ``embeddings`` ``(N, 128)`` with NaN rows where no face was
found, ``model_version``). The cache is keyed by the model version and the image list: a different
list or model re-embeds.

People per domain (``--data``: the folder holding ``lfw/``, ``pins/``, ...):

* ``lfw``: every LFW DevTest image (P3's people) and the 300 LFW DevTrain people that the shipped
  calibration used (at most ``caps["lfw"]`` images each); LFW's face rule (the face nearest the
  centre).
* ``pins``, ``bollywood``: the validation and test people of ``facever/training/splits`` (never trained on).
* ``glint16``, ``orl``, ``yale``: every person (8 of glint's 16 people are in facever's
  fine-tuning data under LFW or pins names: flagged ``trained``).

Identities are compared across domains by a canonical key (lower case, letters and digits), so that
the same celebrity in two datasets (e.g. glint's Barack_Obama and pins' barack_obama) is one person.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ROOT / "facever" / "training" / "splits"
DOMAINS = ("lfw", "pins", "bollywood", "glint16", "orl", "yale")
#: Images per person embedded (random, seed 0); None: all. LFW DevTest is always complete (P3).
CAPS = {"lfw": 10, "pins": 40, "bollywood": 80, "glint16": 40, "orl": None, "yale": None}
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")


def identity_key(name: str) -> str:
    """Canonical identity of a folder name: ``Barack_Obama`` and ``barack_obama`` are one person."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass
class DomainPeople:
    """People of one domain: ``paths`` relative to ``root``, one ``person`` per path, flags per person."""

    domain: str
    root: Path
    paths: list[str]
    person: list[str]
    part: dict[str, str]          # person -> "calib" / "devtest" / "val" / "test" / "all"
    trained: dict[str, bool]      # person -> in facever's fine-tuning data


def _read_list(name: str) -> set[str]:
    return {line.strip() for line in (SPLITS / name).read_text().splitlines() if line.strip()}


def _images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT)


def _cap(files: list[str], cap: int | None, rng: np.random.Generator) -> list[str]:
    if cap is None or len(files) <= cap:
        return files
    return sorted(rng.choice(files, cap, replace=False).tolist())


def trained_keys(data: Path, metadata: dict) -> set[str]:
    """Identity keys of the people facever's shipped model was fine-tuned on."""
    from facever.training import lfw

    devtrain = lfw.read_people(lfw.protocol_file(data / "lfw", "peopleDevTrain.txt"))
    calib = set(metadata["training"]["calibration_people"]["lfw"])
    names = (set(devtrain) - calib) | _read_list("pins_train.txt") | _read_list("bollywood_train.txt")
    return {identity_key(n) for n in names}


def domain_people(domain: str, data: Path, metadata: dict, trained: set[str], seed: int = 0) -> DomainPeople:
    """The people (and image paths) of ``domain`` used by the benchmark."""
    from facever.training import lfw

    rng = np.random.default_rng(seed)
    cap = CAPS[domain]
    paths, person, part = [], [], {}
    if domain == "lfw":
        root = data / "lfw" / "lfw-deepfunneled"
        devtest = lfw.read_people(lfw.protocol_file(data / "lfw", "peopleDevTest.txt"))
        for p, n in devtest.items():
            part[p] = "devtest"
            paths += [lfw.image_path(p, i) for i in range(1, n + 1)]
            person += [p] * n
        for p in sorted(metadata["training"]["calibration_people"]["lfw"]):
            part[p] = "calib"
            files = _cap(_images(root / p), cap, rng)
            paths += [f"{p}/{f}" for f in files]
            person += [p] * len(files)
    else:
        root = data / domain
        if domain in ("pins", "bollywood"):
            chosen = {p: "val" for p in _read_list(f"{domain}_val.txt")}
            chosen.update({p: "test" for p in _read_list(f"{domain}_test.txt")})
        else:
            chosen = {p.name: "all" for p in root.iterdir() if p.is_dir()}
        for p in sorted(chosen):
            part[p] = chosen[p]
            files = _cap(_images(root / p), cap, rng)
            paths += [f"{p}/{f}" for f in files]
            person += [p] * len(files)
    flags = {p: identity_key(p) in trained for p in part}
    return DomainPeople(domain, root, paths, person, part, flags)


def _digest(version: str, paths: list[str]) -> str:
    return hashlib.sha256("\0".join([version, *paths]).encode()).hexdigest()[:16]


def embed_domain(people: DomainPeople, verifier, cache: Path, batch_size: int = 32,
                 log=print) -> np.ndarray:
    """``(N, D)`` embeddings of ``people.paths`` (NaN rows: no face), from ``cache`` when it matches."""
    cache.mkdir(parents=True, exist_ok=True)
    file = cache / f"{people.domain}.npz"
    key = _digest(verifier.model_version, people.paths)
    if file.is_file():
        z = np.load(file, allow_pickle=False)
        if str(z["key"]) == key:
            return z["embeddings"]
    log(f"{people.domain}: embedding {len(people.paths)} images")
    t0 = time.perf_counter()
    if people.domain == "lfw":
        from facever.training.evaluation import embed_lfw_images

        emb = embed_lfw_images(verifier, people.root, people.paths, batch_size=batch_size).embeddings
    else:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_embed import embed_facever_images

        emb = embed_facever_images(verifier, people.root, people.paths, None, batch_size)["embeddings"]
    np.savez(file, names=np.array(people.paths), embeddings=emb, key=np.array(key),
             model_version=np.array(verifier.model_version),
             meta=np.array(json.dumps({"seconds": round(time.perf_counter() - t0, 1)})))
    log(f"{people.domain}: {int(np.isfinite(emb).all(axis=1).sum())}/{len(emb)} faces, "
        f"{time.perf_counter() - t0:.0f} s")
    return emb


@dataclass
class Domain:
    """Embedded faces of one domain (rows with a face only): ``x`` ``(N, D)``, ``person`` (folder
    name), ``key`` (identity key), ``part`` and ``trained`` per row."""

    name: str
    x: np.ndarray
    person: np.ndarray
    key: np.ndarray
    part: np.ndarray
    trained: np.ndarray
    n_images: int

    def select(self, mask: np.ndarray) -> "Domain":
        """The rows where ``mask`` is true."""
        return Domain(self.name, self.x[mask], self.person[mask], self.key[mask], self.part[mask],
                      self.trained[mask], int(mask.sum()))

    @property
    def n_people(self) -> int:
        return len(np.unique(self.person))


def load_domains(domains, data: Path, metadata: dict, verifier, cache: Path, log=print) -> dict[str, Domain]:
    """Embed (or read from ``cache``) every domain; only rows with a face are kept."""
    trained = trained_keys(data, metadata)
    out = {}
    for d in domains:
        people = domain_people(d, data, metadata, trained)
        emb = embed_domain(people, verifier, cache, log=log)
        ok = np.isfinite(emb).all(axis=1)
        person = np.array(people.person)
        out[d] = Domain(d, emb[ok].astype(np.float32), person[ok],
                        np.array([identity_key(p) for p in person[ok]]),
                        np.array([people.part[p] for p in person[ok]]),
                        np.array([people.trained[p] for p in person[ok]]), len(emb))
    return out
