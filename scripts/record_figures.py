"""Store an evaluation summary (benchmarks/eval_embeddings.py JSON) in a bundle's metadata
(:func:`facever.training.cached_evaluation.record_figures`): only ``metadata.json`` changes
(``figures.evaluation``); the model version (hash of the graph) does not.

Usage: python scripts/record_figures.py BUNDLE_DIR EVAL.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from facever.training.cached_evaluation import figures_summary as summary, record_figures  # noqa: F401


def main(bundle: str, eval_json: str) -> None:
    print(json.dumps(record_figures(bundle, json.loads(Path(eval_json).read_text())), indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
