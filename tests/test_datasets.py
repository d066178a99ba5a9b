"""Identity datasets, the aligned-crop cache and aligned_crops with a stub detector (no MTCNN).

The crops here are 112 px ArcFace crops (the stub's landmarks sit on that template, so alignment is
the identity): the geometry is a parameter, the same code aligns 150 px dlib chips by default."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from facever.alignment import TEMPLATE_112
from facever.detection import Face
from facever.training.datasets import (
    PIPELINE_VERSION,
    CropCache,
    IdentityDataset,
    aligned_crops,
    concat,
    file_sha256,
    from_folders,
)


#: The geometry of the crops in these tests.
CANONICAL_SIZE, TEMPLATE = 112, "arcface"


def _image(seed: int, size: int = CANONICAL_SIZE, flat: bool = False) -> np.ndarray:
    """A blocky random RGB picture (``flat``: one grey value, which the stub sees as "no face")."""
    if flat:
        return np.full((size, size, 3), 90 + seed % 50, np.uint8)
    grid = np.random.default_rng(seed).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_NEAREST)


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


class CountingDetector:
    """One face with the 112-px template landmarks (so alignment is the identity on a 112-px image);
    no face in a flat image. Counts the images it was asked about."""

    def __init__(self) -> None:
        self.calls = 0
        self.images = 0
        self.retries = 0

    def detect(self, image):
        """The second pass on a padded copy (after an empty first pass): still no face."""
        self.retries += 1
        return []

    def detect_batch(self, images):
        self.calls += 1
        self.images += len(images)
        out = []
        for im in images:
            if float(im.std()) < 2.0:
                out.append([])
                continue
            h, w = im.shape[:2]
            lm = TEMPLATE_112 * (min(h, w) / 112.0)
            out.append([Face(box=(0.0, 0.0, float(w), float(h)), landmarks=lm.astype(np.float32), score=0.99)])
        return out


def _dataset(root: Path, people: dict[str, int], start: int = 0) -> IdentityDataset:
    """``{name: n_images}`` as PNG folders under ``root``; returns ``from_folders(root)``."""
    seed = start
    for name, n in people.items():
        for k in range(n):
            _write(root / name / f"{name}_{k:04d}.png", _image(seed))
            seed += 1
    return from_folders(root)


# ---- from_folders ---------------------------------------------------------------------------------

def test_from_folders_reads_person_folders(tmp_path):
    root = tmp_path / "ids"
    for name, n in {"alice": 3, "bob": 1, "carol": 2, "zed": 2}.items():
        for k in range(n):
            _write(root / name / f"{k}.png", _image(k))
    (root / "alice" / "notes.txt").write_text("not an image")
    (root / "alice" / "thumbs.db").write_bytes(b"\0")
    (root / "alice" / "nested").mkdir()
    _write(root / "alice" / "nested" / "deep.png", _image(9))  # only files directly inside count
    _write(root / "loose.png", _image(8))  # not in a person folder
    (root / "empty_person").mkdir()
    _write(root / "upper" / "A.JPG", _image(7))  # suffix case does not matter

    ds = from_folders(root, exclude=["zed"])
    assert ds.people == ["alice", "bob", "carol", "upper"]
    assert ds.paths == ["alice/0.png", "alice/1.png", "alice/2.png", "bob/0.png", "carol/0.png", "carol/1.png",
                        "upper/A.JPG"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2, 3] and ds.labels.dtype == np.int64
    assert ds.excluded == ["zed"] and ds.source == str(root) and len(ds) == 7
    assert all((root / p).is_file() for p in ds.paths)

    ds2 = from_folders(root, min_images=2)
    assert ds2.people == ["alice", "carol", "zed"]
    assert ds2.labels.tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_from_folders_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        from_folders(tmp_path / "missing")
    (tmp_path / "x" / "a").mkdir(parents=True)
    (tmp_path / "x" / "a" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="no images"):
        from_folders(tmp_path / "x")
    _write(tmp_path / "y" / "a" / "1.png", _image(0))
    with pytest.raises(ValueError):
        from_folders(tmp_path / "y", exclude=["a"])
    with pytest.raises(ValueError):
        from_folders(tmp_path / "y", min_images=2)


# ---- splits, singletons, concat ---------------------------------------------------------------

def _synthetic(n_people: int = 30, seed: int = 0, root: str = "/data") -> IdentityDataset:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n_people)
    labels = np.repeat(np.arange(n_people), counts)
    people = [f"p{i:02d}" for i in range(n_people)]
    paths = [f"{people[lab]}/{k}.jpg" for lab in range(n_people) for k in range(counts[lab])]
    return IdentityDataset(Path(root), paths, labels.astype(np.int64), people, source="syn")


def _names(ds: IdentityDataset) -> list[str]:
    return [ds.people[lab] for lab in ds.labels]


def test_subset_relabels_densely():
    ds = _synthetic()
    mask = np.isin(ds.labels, [3, 7, 20])
    sub = ds.subset(mask)
    assert sub.people == ["p03", "p07", "p20"] and set(sub.labels.tolist()) == {0, 1, 2}
    assert _names(sub) == [n for n, m in zip(_names(ds), mask) if m]
    assert sub.paths == [p for p, m in zip(ds.paths, mask) if m]


def test_split_people_is_identity_disjoint_and_deterministic():
    ds = _synthetic()
    train, held = ds.split_people(6, seed=3)
    assert len(held.people) == 6 and not set(train.people) & set(held.people)
    assert sorted(train.paths + held.paths) == sorted(ds.paths)
    counts = np.bincount(held.labels)
    assert ((counts >= 2) & (counts <= 20)).all()
    # each path keeps its person
    truth = dict(zip(ds.paths, _names(ds)))
    assert all(truth[p] == n for d in (train, held) for p, n in zip(d.paths, _names(d)))
    again = ds.split_people(6, seed=3)
    assert again[1].paths == held.paths and again[0].paths == train.paths
    assert {tuple(ds.split_people(6, seed=s)[1].people) for s in range(5)} != {tuple(held.people)}
    with pytest.raises(ValueError, match="cannot hold out"):
        ds.split_people(len(ds.people), seed=0)


def test_add_singletons_to_moves_one_image_people():
    ds = _synthetic()
    train, held = ds.split_people(5, seed=0)
    singles = [p for p, c in zip(train.people, np.bincount(train.labels)) if c == 1]
    assert len(singles) >= 3
    train2, held2 = train.add_singletons_to(held, 3, seed=1)
    moved = set(held2.people) - set(held.people)
    assert len(moved) == 3 and moved <= set(singles)
    assert not set(train2.people) & set(held2.people)
    assert len(train2) + len(held2) == len(train) + len(held)
    assert held2.paths[:len(held)] == held.paths  # existing hold-out first, newcomers appended
    assert train.add_singletons_to(held, 3, seed=1)[1].paths == held2.paths
    # asking for more than exist moves all of them
    _, all_moved = train.add_singletons_to(held, 10_000, seed=0)
    assert len(all_moved.people) == len(held.people) + len(singles)


def test_concat_same_and_different_roots():
    a, b = _synthetic(4, seed=1, root="/data"), _synthetic(3, seed=2, root="/data")
    c = concat([a, b])
    assert c.root == Path("/data") and c.paths == a.paths + b.paths
    assert c.people == a.people + b.people and c.labels.tolist() == a.labels.tolist() + (b.labels + 4).tolist()
    assert c.source == "syn+syn"
    d = concat([a, _synthetic(3, seed=2, root="/other")])
    assert d.root == Path("/") and d.paths[0] == str(Path("/data") / a.paths[0])
    assert d.paths[-1].startswith("/other/")
    assert all((d.root / p) == Path(p) for p in d.paths)


# ---- CropCache ------------------------------------------------------------------------------------

def test_crop_cache_add_save_reload(tmp_path):
    cache = CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE)
    assert len(cache) == 0 and cache.get("abc") is None and "abc" not in cache
    crops = np.stack([_image(i) for i in range(3)])
    lms = np.stack([TEMPLATE_112] * 3)
    cache.add(["k0", "k1", "k2"], crops, lms, np.array([True, False, True]))
    cache.add(["k1", "k3"], np.stack([_image(40), _image(41)]), lms[:2], np.array([True, True]))  # k1 kept
    assert len(cache) == 4 and "k3" in cache
    got, det = cache.get("k1")
    np.testing.assert_array_equal(got, crops[1])
    assert det is False
    assert not cache.file.exists()  # in memory until save()
    cache.save()
    assert cache.file.name == f"crops-{PIPELINE_VERSION}-arcface112.npz" and cache.file.is_file()
    assert not list(cache.directory.glob("*.tmp*"))

    again = CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE)
    assert len(again) == 4
    for k, want, want_det in [("k0", crops[0], True), ("k1", crops[1], False), ("k3", _image(41), True)]:
        got, det = again.get(k)
        np.testing.assert_array_equal(got, want)
        assert det is want_det
    again.add(["k4"], _image(5)[None], lms[:1], np.array([True]))
    again.save()
    assert len(CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE)) == 5


# ---- aligned_crops ----------------------------------------------------------------------------------

def test_aligned_crops_detects_once_and_caches_by_content(tmp_path):
    root = tmp_path / "ids"
    ds = _dataset(root, {"ann": 3, "ben": 2})
    # a byte-identical copy under another name: same cache key
    (root / "ben" / "copy.png").write_bytes((root / "ann" / "ann_0000.png").read_bytes())
    ds = from_folders(root)
    assert file_sha256(root / "ben" / "copy.png") == file_sha256(root / "ann" / "ann_0000.png")

    det = CountingDetector()
    cache = CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE)
    progress = []
    crops, ok = aligned_crops(ds, CANONICAL_SIZE, TEMPLATE, cache, detector=det, batch=2, progress=lambda d, t: progress.append((d, t)))
    assert ok.all() and crops.shape == (len(ds), CANONICAL_SIZE, CANONICAL_SIZE, 3) and crops.dtype == np.uint8
    assert det.images == len(ds) and det.calls == 3 and progress[-1] == (len(ds), len(ds))
    # template landmarks on a 112-px image: alignment is (nearly) the identity
    from facever.imaging import load_image

    for i, p in enumerate(ds.paths):
        diff = np.abs(crops[i].astype(int) - load_image(root / p).astype(int))
        assert np.median(diff) <= 2
    assert cache.file.is_file() and len(cache) == len(ds) - 1  # the copy shares its key

    # second run (fresh cache object from disk): no detection at all
    det2 = CountingDetector()
    crops2, ok2 = aligned_crops(ds, CANONICAL_SIZE, TEMPLATE, CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE), detector=det2)
    assert det2.calls == 0 and ok2.all()
    np.testing.assert_array_equal(crops2, crops)

    # a new image: only it is detected
    _write(root / "cy" / "cy_0000.png", _image(77))
    ds3 = from_folders(root)
    det3 = CountingDetector()
    _, ok3 = aligned_crops(ds3, CANONICAL_SIZE, TEMPLATE, CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE), detector=det3)
    assert det3.images == 1 and ok3.all()


def test_aligned_crops_fallback_landmarks_and_drops(tmp_path):
    root = tmp_path / "ids"
    _write(root / "dan" / "face.png", _image(1))
    _write(root / "dan" / "flat_known.png", _image(2, flat=True))  # no face, but annotated
    _write(root / "eve" / "flat_unknown.png", _image(3, flat=True))  # no face, no annotation
    ds = from_folders(root)
    assert ds.paths == ["dan/face.png", "dan/flat_known.png", "eve/flat_unknown.png"]
    cache = CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE)
    fallback = {"dan/flat_known.png": TEMPLATE_112.copy()}
    crops, ok = aligned_crops(ds, CANONICAL_SIZE, TEMPLATE, cache, detector=CountingDetector(), fallback_landmarks=fallback)
    assert ok.tolist() == [True, True, False]
    assert (crops[2] == 0).all()
    assert abs(float(crops[1].mean()) - float(_image(2, flat=True).mean())) < 2
    key = file_sha256(root / "dan" / "flat_known.png")
    assert cache.get(key)[1] is False  # cached as "fallback, not detected"
    assert cache.get(file_sha256(root / "dan" / "face.png"))[1] is True
    assert cache.get(file_sha256(root / "eve" / "flat_unknown.png")) is None  # dropped: not cached

    # without fallback the unannotated image is dropped again (re-detected: not cached)
    det = CountingDetector()
    _, ok2 = aligned_crops(ds, CANONICAL_SIZE, TEMPLATE, CropCache(tmp_path / "cache", CANONICAL_SIZE, TEMPLATE), detector=det)
    assert ok2.tolist() == [True, True, False] and det.images == 1
    assert det.retries == 2  # the inference pipeline's retries ran on it: padded, then enlarged (a small image)
