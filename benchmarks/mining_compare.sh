#!/usr/bin/env bash
# Issue 3: the three mining strategies (and distillation) compared on the same small budget.
# Same data (LFW minus peopleDevTest, minus the calibration hold-out), same seed, same steps;
# each bundle is then scored on P1 (LFW View 1 DevTest pairs, 10-fold threshold).
#   benchmarks/mining_compare.sh [LFW_ROOT] [WORK_DIR] [TEACHER_NPZ]
set -euo pipefail
LFW=${1:-../shared/data/lfw}
WORK=${2:-runs/mining}
TEACHER=${3:-}
CACHE=${FACEVER_CACHE:-$WORK/cache}
EPOCHS=${EPOCHS:-4}
mkdir -p "$WORK"
run() {  # name, extra train args...
  local name=$1; shift
  [ -f "$WORK/$name/p1.json" ] && return 0
  facever train --lfw "$LFW" --out "$WORK/$name" --cache "$CACHE" --input-size 64 --epochs "$EPOCHS" \
    --people-per-batch 32 --images-per-person 4 --extra-singletons 32 --margin 0.2 --lr 1e-3 --warmup-steps 100 --seed 0 --resume --json "$@" \
    > "$WORK/$name/train.json"
  facever evaluate --lfw "$LFW" --model "$WORK/$name/bundle" --protocol p1 --crop-cache "$CACHE" --json > "$WORK/$name/p1.json"
}
for m in semi_hard batch_all batch_hard; do mkdir -p "$WORK/$m"; run "$m" --mining "$m"; done
if [ -n "$TEACHER" ]; then
  mkdir -p "$WORK/batch_hard_distill"
  run batch_hard_distill --mining batch_hard --teacher "$TEACHER" --distill-weight 4 --distill-pair-weight 1
fi
python - "$WORK" <<'PY'
import json, pathlib, sys
w = pathlib.Path(sys.argv[1])
print(f"{'run':<22} {'P1 acc':>7} {'AUC':>6} {'EER':>6} {'val acc':>7} {'active':>6} {'d(a,p)':>6} {'d(a,n)':>6}")
for d in sorted(p for p in w.iterdir() if (p / "p1.json").is_file()):
    p1 = json.loads((d / "p1.json").read_text())["p1"]
    last = json.loads((d / "train.json").read_text())["last_epoch"]
    print(f"{d.name:<22} {p1.get('accuracy', float('nan')):>7.4f} {p1.get('roc_auc', float('nan')):>6.4f} "
          f"{p1.get('eer', float('nan')):>6.4f} {last['val'].get('accuracy', 0):>7.4f} {last['active_fraction']:>6.2f} "
          f"{last['mean_pos_dist']:>6.3f} {last['mean_neg_dist']:>6.3f}")
PY
