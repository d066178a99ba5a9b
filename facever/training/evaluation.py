"""Evaluation (training side): verification metrics, LFW protocols P1–P4, plots, detection figures.

Three modules: :mod:`~facever.training.metrics` (rates, thresholds, ROC figures, open-set
identification), :mod:`~facever.training.protocols` (LFW P1–P4 runners and facever's pipeline on
LFW images) and :mod:`~facever.training.plots`. Their public names are re-exported here.

Conventions. Embeddings are ``(N, D)`` float unit vectors; the distance between two is Euclidean, in
[0, 2]; a pair is accepted ("same person") when its distance ≤ τ. Labels ``same`` are booleans (True =
genuine pair). An embedding row of NaN means no face was found in that image: every pair or probe that
involves it is a *failure*, counted in ``n_failed`` and scored with the maximum distance
:data:`MAX_DISTANCE` (2.0), so it counts against the model (a genuine pair is rejected at any τ < 2).

Rates: FAR (false accept rate) = accepted impostor pairs / impostor pairs; TAR = accepted genuine pairs
/ genuine pairs; FRR = 1 − TAR. Thresholds "at a rate" are the largest τ whose observed rate is ≤ the
target (no interpolation); a target below one impostor (``rate × n < 1``) is reported as not resolvable.

Protocol runners take ``embed(paths) -> (len(paths), D)`` where ``paths`` are relative to the LFW image
root (see :mod:`facever.training.lfw`); :func:`embed_lfw_images` is that function for facever's own pipeline.
Every function returns JSON-ready dicts (plain floats, ints, lists, None).
"""

from facever.training.metrics import *  # noqa: F401,F403
from facever.training.metrics import FARS, FPIRS, MAX_DISTANCE, PROTOCOLS, EmbedFn, ProgressFn  # noqa: F401
from facever.training.plots import save_plots  # noqa: F401
from facever.training.protocols import *  # noqa: F401,F403
from facever.training.protocols import (LFWEmbeddings, detection_figures, embed_lfw_images,  # noqa: F401
                                        evaluate_detection, merge_lfw_embeddings)
