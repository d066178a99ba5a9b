"""Open-set calibration on a user's own people, with its FPIR measured on people it never saw.

:func:`calibrate_population` is what ``facever calibrate --open-set --data DIR`` runs on the
embeddings of a folder per person:

1. **Held-out check.** The people are split in two halves (seeded), twice with the halves swapped.
   The open-set data is fitted on one half; random galleries of the other half (10 people up to
   all but a quarter of them, up to 3 faces each) are probed by every face of that half's people
   not enrolled; FPIR = the share named as someone at the gallery's threshold (the same rule as
   identification: the calibrated threshold, gallery-adapted in galleries of
   :data:`~facever.open_set.ADAPT_MIN_PEOPLE` people or more).
2. **Fit.** The data written is fitted on everyone, marked ``origin: "user-calibrated"``, and carries
   the held-out figures as ``transfer["user-calibrated"]`` (identify answers repeat them).

Fewer than :data:`MIN_PEOPLE` people with a face are refused: each half must hold a 10-person
gallery and strangers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facever.open_set.adaptive import adapted_threshold, fit_gallery
from facever.open_set.calibration import impostor_distribution
from facever.open_set.common import DEFAULT_FPIR, _sim_to_dist
from facever.open_set.thresholds import threshold_for_gallery

#: Fewest people (with at least one face) a user calibration accepts.
MIN_PEOPLE = 24

_SIZES = (10, 20, 50, 100, 200, 500, 1000)
_TARGETS = (0.01, 0.001)


class TooFewPeopleError(ValueError):
    """The folder holds too few people to calibrate on or to measure anything."""


def _nearest(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    out = np.empty(len(queries))
    for lo in range(0, len(queries), 2048):
        out[lo:lo + 2048] = _sim_to_dist((queries[lo:lo + 2048] @ gallery.T).max(axis=1))
    return out


def _held_out(x: np.ndarray, y: np.ndarray, cal: dict[str, Any], rng: np.random.Generator, repeats: int,
              reference: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """False accepts per gallery size and target on people ``(x, y)`` that ``cal`` never saw (and
    with the ``reference`` data, e.g. the bundle's own, on the same galleries)."""
    cals = {"user": cal, **({"reference": reference} if reference else {})}
    people = np.unique(y)
    rows_of = {p: np.flatnonzero(y == p) for p in people}
    n_max = len(people) - max(len(people) // 4, 2)
    out = []
    for size in [s for s in _SIZES if s < n_max] + [n_max]:
        counts = {(c, t): [0, 0] for c in cals for t in _TARGETS}
        strangers_seen: set[int] = set()
        for _ in range(repeats if size < 100 else max(2, repeats // 10)):
            chosen = rng.choice(people, size, replace=False)
            enrolled = [rng.permutation(rows_of[p])[:3] for p in chosen]
            starts = np.concatenate([[0], np.cumsum([len(e) for e in enrolled])[:-1]])
            gallery = x[np.concatenate(enrolled)]
            strangers = np.flatnonzero(~np.isin(y, chosen))
            strangers_seen.update(strangers.tolist())
            dist = _nearest(x[strangers], gallery)
            for c, data in cals.items():
                fit = fit_gallery(data, gallery, starts)
                for t in _TARGETS:
                    thr, _ = adapted_threshold(data, fit, len(gallery), size, t)
                    counts[c, t][0] += int((dist <= thr).sum())
                    counts[c, t][1] += len(dist)
        out.append({"people": size, "stranger_photos": len(strangers_seen),
                    **{f"{c}@{t:g}": {"false_accepts": v[0], "stranger_probes": v[1]} for (c, t), v in counts.items()}})
    return out


def _pooled(rows: list[dict[str, Any]], key: str) -> float | None:
    if key not in rows[0]:
        return None
    return sum(r[key]["false_accepts"] for r in rows) / max(sum(r[key]["stranger_probes"] for r in rows), 1)


def _summary(runs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Pool the two halves per size; FPIR ÷ target where the strangers can resolve the target."""
    cells: dict[str, list] = {"user": [], "reference": []}
    sizes = []
    for k in range(min(len(r) for r in runs)):
        rows = [r[k] for r in runs]
        photos = min(r["stranger_photos"] for r in rows)
        entry: dict[str, Any] = {"people": rows[0]["people"], "stranger_photos": photos}
        for t in _TARGETS:
            for c in cells:
                fpir = _pooled(rows, f"{c}@{t:g}")
                if fpir is None:
                    continue
                entry[f"fpir@{t:g}" if c == "user" else f"bundle_fpir@{t:g}"] = fpir
                if photos >= 3 / t:
                    cells[c].append((rows[0]["people"], t, fpir / t))
        sizes.append(entry)
    spread: dict[str, Any] = {"measured_by": "facever calibrate --open-set (two held-out halves of the user's people)",
                              "fpir_targets": list(_TARGETS), "sizes": sizes}
    mine = cells["user"]
    if mine:
        worst = max(mine, key=lambda c: c[2])
        spread.update({"ratio_min": round(min(c[2] for c in mine), 3), "ratio_max": round(worst[2], 3),
                       "worst": f"{worst[0]} people, target {worst[1]:.1%}",
                       "over_1.5x": sorted({f"{p} people ({t:.1%})" for p, t, r in mine if r > 1.5})})
        if cells["reference"]:
            spread["bundle_ratio_max"] = round(max(c[2] for c in cells["reference"]), 3)
    else:
        spread.update(ratio_min=None, ratio_max=None, worst=None,
                      note=f"too few stranger photos to resolve a {_TARGETS[0]:.0%} rate (need {3 / _TARGETS[0]:.0f})")
    return spread


def calibrate_population(embeddings: np.ndarray, labels: np.ndarray, *, default_fpir: float = DEFAULT_FPIR,
                         description: str = "", repeats: int = 50, seed: int = 0,
                         min_people: int = MIN_PEOPLE, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit open-set data on a user's people and measure its FPIR on held-out halves of them.

    Args:
        embeddings: ``(N, D)`` unit vectors by the model being calibrated; NaN rows are ignored.
        labels: ``(N,)`` person of each row.
        default_fpir: the target written into the data (identification's default).
        description: who the people are (stored).
        repeats: random galleries per size below 100 people in the held-out check.
        seed: for the halves, galleries and subsamples.
        min_people: refuse with fewer people with a face.
        reference: open-set data to measure on the same held-out galleries for comparison (the
            bundle's own): ``bundle_fpir@...`` per size and ``bundle_ratio_max``.
    Returns:
        :func:`~facever.open_set.impostor_distribution`'s dict fitted on everyone, plus ``origin``
        (``"user-calibrated"``) and ``transfer["user-calibrated"]``: ``ratio_min``/``ratio_max``
        (measured FPIR ÷ target on the held-out halves), ``worst``, ``sizes`` (per gallery size), and
        ``promise``: the FPIR the data can promise at the target for 10 people with 3 faces each
        (above the target when the people are too few to resolve it).
    Raises:
        TooFewPeopleError: fewer than ``min_people`` people with a face.
    """
    x = np.asarray(embeddings, np.float32)
    y = np.asarray(labels).ravel()
    ok = np.isfinite(x).all(axis=1)
    x, y = x[ok], y[ok]
    people = np.unique(y)
    if len(people) < min_people:
        raise TooFewPeopleError(
            f"{len(people)} people with a face found; calibrating open-set identification needs at least "
            f"{min_people} (two halves, each a 10-person gallery plus strangers), and a 1% rate is only "
            f"measured with 300+ photos of strangers: add more people")
    rng = np.random.default_rng(seed)
    order = rng.permutation(people)
    halves = [np.isin(y, order[:len(order) // 2]), np.isin(y, order[len(order) // 2:])]
    runs = []
    for fit_on, test_on in ((halves[0], halves[1]), (halves[1], halves[0])):
        cal = impostor_distribution(x[fit_on], y[fit_on], default_fpir=default_fpir, seed=seed)
        runs.append(_held_out(x[test_on], y[test_on], cal, rng, repeats, reference))
    data = impostor_distribution(x, y, default_fpir=default_fpir, seed=seed,
                                 description=description or f"user calibration: {len(people)} people, {len(x)} faces")
    data["origin"] = "user-calibrated"
    data["transfer"] = {"user-calibrated": _summary(runs)}
    _, promise = threshold_for_gallery(data, 30, 10, default_fpir)
    data["transfer"]["user-calibrated"]["promise"] = {"people": 10, "faces": 30, "fpir_target": default_fpir,
                                                      "expected_fpir": round(float(promise), 6)}
    return data
