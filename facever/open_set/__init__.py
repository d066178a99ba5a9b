"""Open-set thresholds that depend on the gallery size (NumPy only: no TensorFlow, no scikit-learn).

A stranger (someone not enrolled) shown to :meth:`facever.gallery.Gallery.identify` is compared
with every enrolled face, and is named as *someone* when the nearest one is within the threshold.
If one comparison falsely accepts with probability ``f`` (the per-comparison false-accept rate at
the threshold), ``N`` independent comparisons accept a stranger with probability

    FPIR = 1 - (1 - f) ** N                       (false positive identification rate)

so a fixed threshold that is honest for 10 people names most strangers at 100,000. This module
turns a target FPIR into a distance threshold for the current gallery:

1. :func:`impostor_distribution` measures, once per model on held-out people (at most
   ``MAX_PER_PERSON`` = 10 faces each, so that a few people with a hundred photos do not outweigh
   the rest), the distances between faces of *different* people (every pair, in blocks) and
   stores them compactly as a JSON-ready dict (about 25 KB: the model bundle's ``metadata.open_set``).
2. :func:`threshold_for_gallery` finds the distance at which the predicted FPIR of this gallery
   equals the target, and :func:`expected_fpir` reports the FPIR of any threshold (both well
   under a millisecond).

**Three effects are modelled, each measured on the calibration people:**

* *The far tail of one comparison.* The pooled per-comparison rate ``f(d)`` (fraction of impostor
  pairs at distance ≤ d) is stored at a log-spaced grid of rates (1e-9 .. 0.5: ``far`` and
  ``distance``). Rates are trusted down to ``MIN_TAIL_PAIRS / n_impostor``; below that the grid
  comes from a *probit-linear tail model* ``Φ⁻¹(f) = a + b·d`` fitted on the two decades just above
  that limit, and is flagged in ``extrapolated``. On synthetic embeddings with look-alike groups and
  hub faces this form predicted rates 16× rarer than its fitting data within a factor of 2, mostly
  erring high (a stricter threshold), and beat the same fit on the cosine similarity and
  exponential tails. It is validated every time it is made: refitted on a 1/16 thinning of the
  pairs it must predict the rates the full set still resolves (``tail["validation"]``, log10
  errors). Without a tail model (too few pairs to fit one) the grid is clamped at the resolved
  limit, and :func:`far_at_distance` never reports a rate below it.
* *Some faces are near everyone* (poor photos drift towards a common point: "hubs"), and a
  stranger from a crowded look-alike group is near many people. False accepts concentrate on such
  probes, so ``1 - (1 - f) ** N`` with the pooled ``f`` overstates the FPIR of large galleries (on
  synthetic data it predicted 82% for a fixed threshold where 18% was measured, and the adaptive
  threshold it gave let the FPIR sink to half its target). Each calibration face is therefore a
  probe with its own rate ``f_i(d)``: measured from its own impostor distances down to its 6th
  nearest impostor, below that a probit tail ``Φ(z_i + β (d - d_i))`` anchored at its 2nd-6th
  nearest impostors (``PROBE_K``), whose common slope β makes ``mean_i f_i`` reproduce the pooled
  tail. The FPIR of ``N_eff`` comparisons is ``mean_i [1 - (1 - f_i) ** N_eff]`` (exact for
  galleries drawn from the calibration population, given the probe). It is stored per grid
  distance as the mean rate of the probes in rank bins (finest for the highest rates, which
  dominate large galleries): ``probes``.
* *Faces of one person are correlated*, so a person enrolled with ``m`` faces is fewer than ``m``
  independent chances: ``N_eff = n_people · (n_faces / n_people) ** face_exponent``, the exponent
  (0: count people, 1: count faces) measured by comparing the rate at which a stranger comes near
  the nearest of ``m`` = 2, 3 faces of a person with the rate for one face. ``count="faces"`` or
  ``"people"`` selects the plain counts instead (for comparisons; see ``benchmarks/open_set.py``).

The dict also holds ``validation``: the FPIR measured on random galleries drawn from the
calibration people at the threshold this module computes for them (in-sample; the held-out check
is ``benchmarks/open_set.py``).

**Transfer to other populations** (:mod:`facever.open_set.adaptive`): a population more crowded than
the calibration people (measured leaving one domain out: ``benchmarks/open_set_lodo.py``) makes
strangers more often near someone. :func:`fit_gallery` compares the body of the gallery's own
between-person nearest distances with the calibration's prediction and :func:`adapted_threshold`
tightens (never loosens) the threshold by the difference, in galleries of at least
``ADAPT_MIN_PEOPLE`` people. The dict may carry ``origin`` (``"user-calibrated"`` when written by
``facever calibrate --open-set``) and ``transfer`` (measured FPIR ÷ target on people it was not
calibrated on, per footing).
"""

from facever.open_set.adaptive import (ADAPT_MAX_PEOPLE, ADAPT_MIN_PEOPLE, ADAPT_QUANTILES,  # noqa: F401
                                       GalleryFit, adapted_expected_fpir, adapted_threshold,
                                       cross_person_nearest, fit_gallery)
from facever.open_set.calibration import impostor_distribution, synthetic_embeddings  # noqa: F401
from facever.open_set.common import (DEFAULT_FPIR, DUPLICATE_FAR, DUPLICATE_MAX_REFUSAL, MAX_PER_PERSON,  # noqa: F401
                                     MIN_TAIL_PAIRS, OPEN_SET_VERSION, PROBE_K, _norm_cdf, _norm_ppf, default_far_grid)
from facever.open_set.user import MIN_PEOPLE as USER_MIN_PEOPLE, TooFewPeopleError, calibrate_population  # noqa: F401
from facever.open_set.thresholds import (Count, distance_at_far, duplicate_threshold, effective_count,  # noqa: F401
                                         expected_fpir, far_at_distance, far_for, fpir_for, threshold_for_gallery,
                                         validate)
