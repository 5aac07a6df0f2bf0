#!/usr/bin/env bash
# The GPU measurements behind the README, in one go, each job alone on the GPU (about 9 minutes on one H200):
#   1. `-m vit`, its default recipe (100 epochs);
#   2. `-m resnet`, the seed's recipe (50 epochs);
#   3. `-m resnet --recipe fast`, then `cifar-hf evaluate --tta` of the model it saved (the flip-TTA gain);
#   4. throughput of the project's path against the bare-PyTorch ceiling (resnet, vit: bf16, batch 512), host
#      syncs per step counted; then, with the time left, both under --torch-compile.
# JOBS picks some of them (default "vit resnet fast bench compile").
# BUDGET (seconds, default 570) bounds the whole suite: a job's limit leaves the jobs after it their share, and a
# job that would not fit is skipped. DATA points at the local copy (../shared/data/cifar10-jpeg).
# SUITE_SCALE=tiny shrinks everything for a CPU dry run.
# Results land in $OUT (default ./suite-out): summary.json, walls.txt and one log per job (8 files at most).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-suite-out}; mkdir -p "$OUT/runs"
DATA=${DATA:-../shared/data/cifar10-jpeg}
BUDGET=${BUDGET:-570}; START=$(date +%s)
JOBS=${JOBS:-vit resnet fast bench compile}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
COMMON="--dataset $DATA --disable_tqdm true"
if [ "${SUITE_SCALE:-full}" = tiny ]; then
  COMMON="$COMMON -d cpu --max-train-samples 256 --max-eval-samples 128"
  VIT="-e 1 -b 64"; RESNET="-e 1 -b 64"; FAST="-e 1 -b 64"
  BENCH="--device cpu --batch-size 64 --steps 4 --warmup 2 --windows 2"
else
  VIT=""; RESNET=""; FAST=""
  BENCH="--device cuda --bf16 --batch-size 512 --steps 40 --warmup 10 --windows 4 --count-syncs"
fi

limit() {  # seconds for the next job: at most $1, leaving $2 for the jobs after it (0 when it cannot get 10)
  local left=$(( BUDGET - ($(date +%s) - START) - $2 ))
  if (( left >= $1 )); then echo "$1"; elif (( left >= 10 )); then echo "$left"; else echo 0; fi
}
job() {  # name, seconds, command...: run it alone, log it, note its wall time and exit status
  local name=$1 seconds=$2; shift 2
  if (( seconds == 0 )); then echo "$name skipped: out of time" | tee -a "$OUT/walls.txt"; return; fi
  local begin=$(date +%s%N)
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  local status=$? ms=$(( ($(date +%s%N) - begin) / 1000000 ))
  echo "$name wall $(( ms / 1000 )).$(printf %03d $(( ms % 1000 ))) s, limit $seconds s, exit $status" | tee -a "$OUT/walls.txt"
}
train() { local name=$1 seconds=$2; shift 2; job "$name" "$seconds" python3 run_classification.py $COMMON -s "$OUT/runs/$name" "$@"; }
bench() { local name=$1 seconds=$2; shift 2; job "bench-$name" "$seconds" python3 benchmarks/throughput.py "$@" $BENCH --json "$OUT/bench-$name.json"; }

wants() { [[ " $JOBS " == *" $1 "* ]]; }

job setup 90 python3 -c "from cifar_hf.data import load_cifar; load_cifar('$DATA')"  # decode once into the cache
wants vit && train vit "$(limit 330 170)" -m vit $VIT
wants resnet && train resnet "$(limit 240 45)" -m resnet $RESNET
if wants fast; then
  train resnet-fast "$(limit 45 15)" -m resnet --recipe fast $FAST
  job resnet-fast-tta "$(limit 30 0)" python3 -m cifar_hf evaluate --model "$OUT/runs/resnet-fast/cifar-resnet" \
    --split validation --tta --output "$OUT/runs/tta"
fi
wants bench && bench resnet "$(limit 45 0)" --model resnet
wants bench && bench vit "$(limit 45 0)" --model vit
wants compile && bench resnet-compiled "$(limit 90 0)" --model resnet --torch-compile
wants compile && bench vit-compiled "$(limit 90 0)" --model vit --torch-compile

python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
summary = {"runs": {}, "bench": {}, "tta": None}
for path in glob.glob(f"{out}/runs/*/cifar-*/results.json"):
    results = json.load(open(path))
    state = json.load(open(os.path.join(os.path.dirname(path), "trainer_state.json")))
    summary["runs"][path.split("/")[-3]] = {**{k: v for k, v in results.items() if k != "hyperparameters"},
                                            "log_history": state["log_history"]}
for path in glob.glob(f"{out}/bench-*.json"):
    summary["bench"][os.path.basename(path)[6:-5]] = json.load(open(path))
if os.path.exists(f"{out}/runs/tta/evaluation-validation.json"):
    summary["tta"] = json.load(open(f"{out}/runs/tta/evaluation-validation.json"))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
for name, r in sorted(summary["runs"].items()):
    best = max(h["eval_accuracy"] for h in r["log_history"] if "eval_accuracy" in h)
    print(f"{name:12s} val {r['val_accuracy']:.4f} (best epoch {best:.4f}) train {r['train_runtime_s']:.1f}s "
          f"{r['train_samples_per_second']:.0f} img/s {r['hardware']}")
if summary["tta"]:
    print(f"resnet-fast with flip TTA: val {summary['tta']['accuracy']:.4f}")
for name, b in sorted(summary["bench"].items()):
    print(f"bench {name:16s} ceiling {b['ceiling_samples_per_second']:.0f} project {b['project_samples_per_second']:.0f} "
          f"ratio {b['ratio']:.3f} syncs/step {b.get('host_syncs_per_step')}")
PY
rm -rf "$OUT/runs"  # models stay behind: only the measurements travel back
cat "$OUT"/bench-*.log > "$OUT/bench.log" 2>/dev/null
rm -f "$OUT"/bench-*.json "$OUT"/bench-*.log
