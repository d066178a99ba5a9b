#!/usr/bin/env bash
# The from-scratch alternative (facever 0.1's default model, resnet_s at 80 px, P1 92.6%): kept as a
# tested recipe; the shipped model is now built by `facever model build`. Run from the repository root with facever installed (pip install -e ".[plots]").
#
#   scripts/train_scratch_model.sh [LFW_ROOT] [WORK_DIR] [TEACHER_PYTHON]
#
# Steps (each skipped when its output exists, so the script can be re-run after an interruption;
# training itself resumes from its last epoch checkpoint):
#   1. (inside `facever train`) every LFW image is detected and aligned once with the inference
#      pipeline, in the model's template and input size, into the crop cache that `facever evaluate
#      --crop-cache` reads too;
#   2. teacher embeddings for distillation: dlib's ResNet (face_recognition_models) on the LFW
#      DevTrain images only, computed by the teacher's own Python (see benchmarks/README.md for
#      installing face_recognition in its own venv); the teacher is never needed at run time;
#   3. `facever train`: LFW people outside peopleDevTest, minus 150 people + 300 one-image people held
#      out by identity for calibrating τ (FAR 1e-2) and the identify threshold (FPIR 5%); triplet loss
#      with semi-hard online mining + distillation from centred teacher targets;
#   4. `facever evaluate` on P1–P4 with the resulting bundle.
set -euo pipefail
LFW=${1:-../shared/data/lfw}
WORK=${2:-runs/default}
TEACHER_PY=${3:-.venv-teacher/bin/python}   # a venv with the teacher (face_recognition) installed
export FACEVER_CACHE=${FACEVER_CACHE:-$WORK/cache}
mkdir -p "$WORK" "$FACEVER_CACHE"

if [ ! -f "$WORK/teacher_devtrain.npz" ]; then
  "$TEACHER_PY" scripts/teacher_embeddings.py "$LFW" "$LFW/protocol/peopleDevTrain.txt" "$WORK/teacher_devtrain.npz" 2
fi

facever train --lfw "$LFW" --out "$WORK/model" --cache "$FACEVER_CACHE" \
  --teacher "$WORK/teacher_devtrain.npz" --distill-weight "${DISTILL_WEIGHT:-4}" --distill-pair-weight "${DISTILL_PAIR_WEIGHT:-1}" \
  --architecture "${ARCH:-resnet_s}" --input-size "${INPUT_SIZE:-80}" --width "${WIDTH:-32}" \
  --epochs "${EPOCHS:-45}" --people-per-batch 32 --images-per-person 4 --extra-singletons 32 --mining semi_hard --margin 0.2 \
  --lr "${LR:-1.5e-3}" --warmup-steps 300 --seed 0 --target-far 1e-2 --target-fpir 0.05 --resume

facever evaluate --lfw "$LFW" --model "$WORK/model/bundle" --crop-cache "$FACEVER_CACHE" --out "$WORK/eval" --json \
  > "$WORK/eval.json"
echo "bundle: $WORK/model/bundle; figures: $WORK/eval.json (copy the bundle to models/default to ship it)"
