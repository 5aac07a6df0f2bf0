#!/usr/bin/env bash
# The GPU measurements behind the README, in one go (about 9 minutes on one H100/H200):
#   1. `-m resnet --recipe fast` alone (wall time and accuracy),
#   2. throughput of the project's path against the bare-PyTorch ceiling (resnet, vit, previt ViT-B/16, cnn),
#   3. the seed resnet recipe, the vit recipe and a 3-epoch ViT-Tiny previt fine-tune, run side by side.
# DATA and VIT_TINY point at the local copies (../shared/...). SUITE_SCALE=tiny shrinks everything for a CPU dry run.
# Results land in $OUT (default ./suite-out): summary.json and one log per job.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-suite-out}; mkdir -p "$OUT/runs"
DATA=${DATA:-../shared/data/cifar10-jpeg}
VIT_TINY=${VIT_TINY:-../shared/models/vit_tiny_patch16_224.augreg_in21k_ft_in1k}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
COMMON="--dataset $DATA --disable_tqdm true"
if [ "${SUITE_SCALE:-full}" = tiny ]; then
  COMMON="$COMMON -d cpu --max-train-samples 256 --max-eval-samples 128"
  FAST="-e 1"; RESNET="-e 1"; VIT="-e 1 -b 64"; PREVIT="-e 1 -b 16"; BENCH="--device cpu --steps 4 --warmup 2 --windows 2"
  BATCH_RESNET=64; BATCH_VIT=64; BATCH_PREVIT=4
else
  FAST=""; RESNET=""; VIT=""; PREVIT="-e 3 -b 128 -l 2e-4"; BENCH="--device cuda --bf16"
  BATCH_RESNET=512; BATCH_VIT=512; BATCH_PREVIT=256
fi
train() {  # name, seconds allowed, flags...
  local name=$1 limit=$2; shift 2
  local start=$(date +%s%N)
  timeout "$limit" python3 run_classification.py $COMMON -s "$OUT/runs/$name" "$@" > "$OUT/$name.log" 2>&1
  local status=$?
  echo "$name wall $(( ($(date +%s%N) - start) / 1000000 )) ms exit $status" | tee -a "$OUT/$name.log"
}

python3 - "$OUT/vit-base" <<'PY'  # a random ViT-B/16 at 224: the previt throughput does not depend on the weights
import sys
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
ViTForImageClassification(ViTConfig(num_labels=1000)).save_pretrained(sys.argv[1])
ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(sys.argv[1])
PY
python3 -c "from cifar_hf.data import load_cifar; load_cifar('$DATA')" > "$OUT/decode.log" 2>&1  # fill the cache once

train resnet-fast 90 -m resnet --recipe fast $FAST
for spec in "resnet $BATCH_RESNET" "vit $BATCH_VIT" "previt $BATCH_PREVIT --model-name-or-path $OUT/vit-base"; do
  set -- $spec
  timeout 60 python3 benchmarks/throughput.py --model "$1" --batch-size "$2" "${@:3}" $BENCH --json "$OUT/bench-$1.json" \
    > "$OUT/bench-$1.log" 2>&1; tail -n 2 "$OUT/bench-$1.log"
done
timeout 60 python3 benchmarks/throughput.py --model cnn --batch-size 128 ${BENCH/--bf16/} --json "$OUT/bench-cnn.json" \
  > "$OUT/bench-cnn.log" 2>&1; tail -n 2 "$OUT/bench-cnn.log"

train resnet 300 -m resnet $RESNET &
train vit 300 -m vit $VIT &
train previt 300 -m previt --model-name-or-path "$VIT_TINY" $PREVIT &
wait

python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
summary = {"runs": {}, "bench": {}}
for path in glob.glob(f"{out}/runs/*/cifar-*/results.json"):
    name = path.split("/")[-3]
    results = json.load(open(path))
    state = json.load(open(os.path.join(os.path.dirname(path), "trainer_state.json")))
    summary["runs"][name] = {**{k: v for k, v in results.items() if k != "hyperparameters"}, "log_history": state["log_history"]}
for path in glob.glob(f"{out}/bench-*.json"):
    summary["bench"][os.path.basename(path)[6:-5]] = json.load(open(path))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
for name, r in sorted(summary["runs"].items()):
    print(f"{name:12s} val {r['val_accuracy']:.4f} train {r['train_runtime_s']:.1f}s {r['train_samples_per_second']:.0f} img/s {r['hardware']}")
for name, b in sorted(summary["bench"].items()):
    print(f"bench {name:8s} ceiling {b['ceiling_samples_per_second']:.0f} project {b['project_samples_per_second']:.0f} ratio {b['ratio']:.3f}")
PY
rm -rf "$OUT/runs" "$OUT/vit-base"  # models stay behind: only the measurements travel back
cat "$OUT"/bench-*.log > "$OUT/bench.log"
rm -f "$OUT"/bench-*.json "$OUT"/bench-*.log "$OUT/decode.log"
