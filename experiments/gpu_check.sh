#!/usr/bin/env bash
# One GPU check: install with the cuda extra, then measure refinement, training and evaluation
# throughput and write experiments/results/{refine,training,evaluation}_gpu.md plus a summary.
#
#   bash experiments/gpu_check.sh    # on a GPU machine, from anywhere: the install, then at most 7 minutes
#
# Steps (each under its own time limit, so one slow step cannot eat the others' time; the refinement
# report is rewritten after every batch size, so a step cut short keeps what it measured):
#   1. pip install -e ".[cuda]"                     (skip: GPU_CHECK_SKIP_INSTALL=1)
#   2. a small synthetic dataset for the input pipeline and evaluation (scorehoi prepare synthetic)
#   3. refinement at paper settings (N=10, tau=50, dt=2) at batch 256, 1024, 4096, with compile times
#   4. stage-1 and stage-2 training at the default size (ResNet-50, 256 px) and the shipped model's
#      size (configs/default_model.py): the step alone, the Grain input alone, and both in the loop
#   5. evaluation throughput of the shipped model (regressor and full ScoreHOI)
# Every size is an environment variable (defaults in brackets), so a test can run the whole script on
# a CPU at tiny sizes (JAX_PLATFORMS=cpu GPU_CHECK_SKIP_INSTALL=1 ...):
#   GPU_CHECK_OUT [experiments/results]   GPU_CHECK_PYTHON [python]          GPU_CHECK_WORKERS [8]
#   GPU_CHECK_FRAMES [128]                GPU_CHECK_RESOLUTION [256]
#   GPU_CHECK_REFINE_BATCHES [256,1024,4096]  GPU_CHECK_REFINE_ARGS []  (extra bench_refine.py arguments)
#   GPU_CHECK_TRAIN_SIZES [default,shipped]   GPU_CHECK_TRAIN_BATCH [64,256]  GPU_CHECK_TRAIN_STEPS [10]
#   GPU_CHECK_EVAL_FRAMES [96]  GPU_CHECK_EVAL_BATCH [64]  GPU_CHECK_EVAL_METHODS [regressor,full]
#   GPU_CHECK_EVAL_ARGS []  (extra `scorehoi evaluate` arguments)
#   GPU_CHECK_LIMITS [60,130,140,90]  (seconds for steps 2-5)
set -uo pipefail

cd "$(dirname "$0")/.."
PY=${GPU_CHECK_PYTHON:-python}
OUT=${GPU_CHECK_OUT:-experiments/results}
WORKERS=${GPU_CHECK_WORKERS:-8}
IFS=, read -r LIM_DATA LIM_REFINE LIM_TRAIN LIM_EVAL <<< "${GPU_CHECK_LIMITS:-60,130,140,90}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
STATUS=()
T0=$(date +%s)

step() {  # step NAME LIMIT COMMAND...: run with a time limit; record ok / failed / timed out and seconds.
  local name=$1 limit=$2 t rc
  shift 2
  t=$(date +%s)
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@"
  rc=$?
  if [ $rc -eq 0 ]; then rc=ok; elif [ $rc -eq 124 ]; then rc="timed out"; else rc="failed ($rc)"; fi
  STATUS+=("$name: $rc in $(( $(date +%s) - t )) s")
}

if [ -z "${GPU_CHECK_SKIP_INSTALL:-}" ]; then
  echo "== install"
  "$PY" -m pip install -q -e ".[cuda]" || { echo "gpu_check: pip install -e .[cuda] failed" >&2; exit 1; }
fi
"$PY" -c "import jax; print('devices:', jax.devices())" || exit 1

step data "$LIM_DATA" "$PY" -m scorehoi_jax.cli prepare synthetic --out "$WORK/data" \
  --num "${GPU_CHECK_FRAMES:-128}" --resolution "${GPU_CHECK_RESOLUTION:-256}" --workers "$WORKERS" --seed 1

# shellcheck disable=SC2086  # The extra arguments are meant to split into words.
step refine "$LIM_REFINE" "$PY" experiments/bench_refine.py --settings paper \
  --batch "${GPU_CHECK_REFINE_BATCHES:-256,1024,4096}" --repeats 2 --skip-ablations --skip-breakdown \
  --compat-batch "" --out "$OUT/refine_gpu.md" ${GPU_CHECK_REFINE_ARGS:-}

step training "$LIM_TRAIN" "$PY" experiments/bench_training.py --sizes "${GPU_CHECK_TRAIN_SIZES:-default,shipped}" \
  --batch "${GPU_CHECK_TRAIN_BATCH:-64,256}" --steps "${GPU_CHECK_TRAIN_STEPS:-10}" --data "$WORK/data" \
  --workers "$WORKERS" --out "$OUT/training_gpu.md"

# shellcheck disable=SC2086
step evaluation "$LIM_EVAL" "$PY" -m scorehoi_jax.cli evaluate --data "$WORK/data" --split train \
  --limit "${GPU_CHECK_EVAL_FRAMES:-96}" --batch "${GPU_CHECK_EVAL_BATCH:-64}" \
  --methods "${GPU_CHECK_EVAL_METHODS:-regressor,full}" --out "$WORK/eval" ${GPU_CHECK_EVAL_ARGS:-}

# The evaluation report and the summary (what each step wrote, its status and time).
printf '%s\n' "${STATUS[@]}" > "$WORK/status.txt"
"$PY" - "$WORK" "$OUT" "$(( $(date +%s) - T0 ))" <<'EOF'
import datetime, json, os, sys

import jax

work, out, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
status = open(os.path.join(work, "status.txt")).read().split("\n")
dev = jax.devices()[0]
metrics = os.path.join(work, "eval", "metrics.json")
if os.path.exists(metrics):
  r = json.load(open(metrics))
  lines = [f"# Evaluation throughput ({datetime.date.today()}, {dev.platform}: {dev.device_kind})", "",
           f"Shipped model, {r['num_frames']} synthetic frames ({r['dataset']}/{r['split']}), batch {r['batch_size']}, "
           f"{r['num_samples']} Chamfer samples per mesh; refinement settings {r['settings'].get('num_rounds')} "
           f"rounds. Written by experiments/gpu_check.sh.", "",
           "| method | samples/s (model) | s per sample | compile (s) | scoring (s) | wall (s) |", "|---|---|---|---|---|---|"]
  for name, m in r["methods"].items():
    lines.append(f"| {name} | {1 / max(m['seconds_per_sample'], 1e-9):.1f} | {m['seconds_per_sample']:.4f} | "
                 f"{m['compile_seconds']:.1f} | {m['scoring_seconds']:.1f} | {m['wall_seconds']:.1f} |")
  with open(os.path.join(out, "evaluation_gpu.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"\n==== gpu_check summary ({dev.platform}: {dev.device_kind}; {total} s in all) ====")
for s in status:
  print(" ", s)
for name in ("refine_gpu.md", "training_gpu.md", "evaluation_gpu.md"):
  path = os.path.join(out, name)
  if not os.path.exists(path):
    print(f"\n{path}: not written")
    continue
  rows = [l for l in open(path).read().split("\n") if l.startswith("|") and not l.startswith("|---")]
  print(f"\n{path}:")
  print("\n".join(rows[:12]))
EOF
grep -q -v ": ok in" "$WORK/status.txt" && exit 1
exit 0
