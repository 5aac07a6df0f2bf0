#!/usr/bin/env bash
# The GPU measurements behind the README, in one go, each job alone on the GPU (about 9 minutes on one H200):
#   1. `-m vit`, its default recipe (100 epochs);
#   2. `-m resnet`, the seed's recipe (50 epochs);
#   3. `-m resnet --recipe fast`, then `cifar-hf evaluate --tta` of the model it saved (the flip-TTA gain);
#   4. `-m previt`, one epoch of the seed's fine-tune recipe (batch 32; the 10 epochs take about 10 minutes on an
#      H200, 752 images/s, so ten times this epoch stands in for them) on ViT-B/16 at 224: PREVIT names the
#      checkpoint; without it, ViT-B/16 with random weights is saved to /tmp (the same arithmetic, so the same
#      time; its accuracy means nothing), as the GPU machine cannot reach the Hub;
#   5. throughput of the project's path against the bare-PyTorch ceiling (resnet, vit: bf16, batch 512; with
#      "previt" also ViT-B/16 bf16 batch 256 and 32, and cnn fp32 batch 128), host syncs per step counted; then,
#      with the time left, resnet and vit under --torch-compile;
#   6. "seedbatch": the seed recipes' own batch sizes: resnet fp32 batch 128, cnn fp32 batch 128, previt ViT-B/16
#      bf16 batch 32 (ceiling and project, the "previt-b32" part needs no training job), and the Trainer's per-step
#      calls timed one by one (benchmarks/host_overhead.py);
#   7. "best": `-m resnet --recipe best` with seeds 2023 and 2024 side by side on the one GPU (accuracy; the
#      wall times of this job are of two runs sharing the GPU); "vitbest" likewise for `-m vit --recipe best`.
#   8. "previtfast": previt `--recipe fast` and the seed recipe on the local ViT-Tiny (accuracy, time), then the
#      fast recipe on ViT-B/16 with random weights (time of the whole run);
#   9. "graphs": previt batch 32 and resnet batch 128 under torch.compile(mode="reduce-overhead") (CUDA graphs).
#  10. "fsdp": previt through accelerate_configs/fsdp.yaml on the GPUs present (FSDP2, one shard unit per ViTLayer),
#      one epoch on 2,000 images, then `cifar-hf evaluate` of the safetensors model it saved (the CPU runs FSDP
#      configs as DDP, so only a GPU machine tests the sharded path).
#  11. "lora": previt ViT-B/16 bf16 at batch 32 and 256, full fine-tune against LoRA r=8 (images/s, peak memory).
#  12. "deepspeed": the fsdp job through accelerate_configs/deepspeed_zero2.yaml and deepspeed_zero3.yaml. DeepSpeed
#      must be importable: build its wheel here with `DS_BUILD_OPS=0 pip wheel --no-deps deepspeed`, carry it with
#      hjson and pydantic, and pip-install them on the GPU machine before this script (as the other wheels).
# JOBS picks some of them (default "vit resnet fast bench compile"; "previt", "previtfast", "seedbatch", "best",
# "vitbest", "graphs", "fsdp", "lora" and "deepspeed" only when named).
# BUDGET (seconds, default 570) bounds the whole suite: a job's limit leaves the jobs after it their share, and a
# job that would not fit is skipped. DATA points at the local copy (../shared/data/cifar10-jpeg).
# SUITE_SCALE=tiny shrinks everything for a CPU dry run, with no time limits: it checks that each job works, and a
# slow or busy machine must not fail it.
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
  COMMON="$COMMON -d cpu --max-train-samples 256 --max-eval-samples 128 --val-size 40"; SPLIT="val_size=40"
  VIT="-e 1 -b 64"; RESNET="-e 1 -b 64"; FAST="-e 1 -b 64"; PREVIT_SIZE="hidden_size=32, num_hidden_layers=1, \
num_attention_heads=2, intermediate_size=64, image_size=64"; PREVIT_ARGS="-e 1"
  BENCH="--device cpu --steps 4 --warmup 2 --windows 2"; BF16=""; B512="--batch-size 16"; B256="--batch-size 8"
  B128="--batch-size 16"; PREVIT_ARGS_FAST="-e 1 -b 8"; PREVIT_ARGS_SEED="-e 1"; FSDP_ARGS=""; UNTIMED=1
  LORA_BATCHES="8"; HOST="--device cpu --models cnn --number 2"
else
  # FAST_ARGS: flags to try on `fast` (e.g. "-e 24")
  VIT=""; RESNET=""; FAST=${FAST_ARGS:-}; PREVIT_SIZE=""; PREVIT_ARGS="-e 1"; SPLIT=""
  BENCH="--device cuda --steps 40 --warmup 10 --windows 4 --count-syncs"; BF16="--bf16"; B512="--batch-size 512"
  B256="--batch-size 256"; B128="--batch-size 128"; PREVIT_ARGS_FAST=""; PREVIT_ARGS_SEED=""
  FSDP_ARGS="--max-train-samples 2000"; LORA_BATCHES="32 256"; HOST="--device cuda"
fi

limit() {  # seconds for the next job: at most $1, leaving $2 for the jobs after it (0 when it cannot get 10)
  if [ "${UNTIMED:-0}" = 1 ]; then echo "$1"; return; fi
  local left=$(( BUDGET - ($(date +%s) - START) - $2 ))
  if (( left >= $1 )); then echo "$1"; elif (( left >= 10 )); then echo "$left"; else echo 0; fi
}
stamp() {  # prefix each line with the seconds since the job began, so that per-epoch times can be read off the log
  local begin=${EPOCHREALTIME/./} line elapsed
  while IFS= read -r line; do
    elapsed=$(( ${EPOCHREALTIME/./} - begin ))
    printf '%5d.%02d %s\n' $(( elapsed / 1000000 )) $(( elapsed % 1000000 / 10000 )) "$line"
  done
}
job() {  # name, seconds, command...: run it alone, log it, note its wall time and exit status
  local name=$1 seconds=$2; shift 2
  if (( seconds == 0 )); then echo "$name skipped: out of time" | tee -a "$OUT/walls.txt"; return; fi
  local begin=$(date +%s%N) guard=(timeout "$seconds")
  if [ "${UNTIMED:-0}" = 1 ]; then guard=(); seconds=none; fi  # the dry run: no limit to depend on the machine's speed
  "${guard[@]}" "$@" 2>&1 | stamp > "$OUT/$name.log"
  local status=${PIPESTATUS[0]} ms=$(( ($(date +%s%N) - begin) / 1000000 ))
  echo "$name wall $(( ms / 1000 )).$(printf %03d $(( ms % 1000 ))) s, limit $seconds s, exit $status" | tee -a "$OUT/walls.txt"
}
train() { local name=$1 seconds=$2; shift 2; job "$name" "$seconds" python3 run_classification.py $COMMON -s "$OUT/runs/$name" "$@"; }
bench() { local name=$1 seconds=$2; shift 2; job "bench-$name" "$seconds" python3 benchmarks/throughput.py "$@" $BENCH --json "$OUT/bench-$name.json"; }

wants() { [[ " $JOBS " == *" $1 "* ]]; }

job setup 90 python3 -c "from cifar_hf.data import load_cifar; load_cifar('$DATA', $SPLIT)"  # decode once into the cache
wants vit && train vit "$(limit 330 170)" -m vit $VIT
wants resnet && train resnet "$(limit 270 45)" -m resnet $RESNET
if wants fast; then
  train resnet-fast "$(limit 60 15)" -m resnet --recipe fast $FAST
  job resnet-fast-tta "$(limit 30 0)" python3 -m cifar_hf evaluate --model "$OUT/runs/resnet-fast/cifar-resnet" \
    --split validation --tta --output "$OUT/runs/tta"
fi
if { wants previt || wants previtfast || wants seedbatch || wants graphs || wants fsdp || wants lora || wants deepspeed; } \
   && [ -z "${PREVIT:-}" ]; then
    PREVIT=/tmp/vit-base-random
    job previt-checkpoint 60 python3 -c "from transformers import ViTConfig, ViTForImageClassification as M
M(ViTConfig($PREVIT_SIZE)).save_pretrained('$PREVIT')"
    cat "$OUT/previt-checkpoint.log" >> "$OUT/setup.log" && rm "$OUT/previt-checkpoint.log"  # 8 files come back
fi
if wants seedbatch; then
  bench resnet-b128 "$(limit 60 0)" --model resnet $B128  # fp32, the seed recipe's precision
  bench cnn-b128 "$(limit 45 0)" --model cnn $B128
  bench previt-b32 "$(limit 60 0)" --model previt --model-name-or-path "$PREVIT" $BF16 --batch-size 32
  job bench-host "$(limit 60 0)" python3 benchmarks/host_overhead.py $HOST  # its log joins bench.log
fi
if wants lora; then  # issue 18's GPU row: memory and speed of LoRA against the full fine-tune
  for size in $LORA_BATCHES; do
    bench "previt-b$size-full" "$(limit 60 0)" --model previt --model-name-or-path "$PREVIT" $BF16 --batch-size "$size"
    bench "previt-b$size-lora" "$(limit 60 0)" --model previt --model-name-or-path "$PREVIT" $BF16 --batch-size "$size" \
      --lora-r 8
  done
fi
pair() {  # name, seconds, model, flags...: two seeds side by side, each in its own run folder, then scored without TTA
  local name=$1 seconds=$2 model=$3 seed; shift 3
  for seed in 2023 2024; do
    job "$name-$seed" "$seconds" bash -c "python3 run_classification.py $COMMON -m $model -s $OUT/runs/$name-$seed \
      --seed $seed $* && python3 -m cifar_hf evaluate --split validation --model $OUT/runs/$name-$seed/cifar-$model \
      --output $OUT/runs/$name-$seed/plain" &
  done
  wait
}
wants best && pair resnet-best "$(limit 360 0)" resnet --recipe best $RESNET
wants vitbest && pair vit-best "$(limit 600 0)" vit --recipe best $VIT
if wants previtfast; then  # `--recipe fast` against the seed recipe on the local ViT-Tiny (accuracy), then on ViT-B (time)
  TINY=${TINY:-../shared/models/vit_tiny_patch16_224.augreg_in21k_ft_in1k}
  train previt-tiny-fast "$(limit 90 330)" -m previt --model-name-or-path "$TINY" --recipe fast $PREVIT_ARGS_FAST
  train previt-tiny-seed "$(limit 240 150)" -m previt --model-name-or-path "$TINY" $PREVIT_ARGS_SEED
  train previt-b-fast "$(limit 150 0)" -m previt --model-name-or-path "$PREVIT" --recipe fast $PREVIT_ARGS_FAST
fi
if wants previt; then
  train previt "$(limit 150 100)" -m previt --model-name-or-path "$PREVIT" $PREVIT_ARGS
  bench previt "$(limit 60 0)" --model previt --model-name-or-path "$PREVIT" $BF16 $B256
  bench previt-b32 "$(limit 45 0)" --model previt --model-name-or-path "$PREVIT" $BF16 --batch-size 32  # seed's batch
  bench cnn "$(limit 45 0)" --model cnn $B128  # fp32, the seed's setting
fi
{ wants fsdp || wants deepspeed; } && GPUS=$(python3 -c "import torch; print(max(torch.cuda.device_count(), 1))")
if wants fsdp; then
  job fsdp "$(limit 150 60)" accelerate launch --config_file accelerate_configs/fsdp.yaml --num_processes "$GPUS" \
    run_classification.py $COMMON -s "$OUT/runs/fsdp" -m previt --model-name-or-path "$PREVIT" -e 1 \
    $FSDP_ARGS
  job fsdp-evaluate "$(limit 60 0)" python3 -m cifar_hf evaluate --model "$OUT/runs/fsdp/cifar-previt" \
    --split validation --output "$OUT/runs/fsdp-evaluation"
fi
if wants deepspeed; then  # ZeRO-2 and ZeRO-3: train, save one safetensors model, and score it again
  for stage in 2 3; do
    job "zero$stage" "$(limit 150 60)" accelerate launch --config_file "accelerate_configs/deepspeed_zero$stage.yaml" \
      --num_processes "$GPUS" run_classification.py $COMMON -s "$OUT/runs/zero$stage" -m previt \
      --model-name-or-path "$PREVIT" -e 1 $FSDP_ARGS
    job "zero$stage-evaluate" "$(limit 60 0)" python3 -m cifar_hf evaluate --model "$OUT/runs/zero$stage/cifar-previt" \
      --split validation --output "$OUT/runs/zero$stage-evaluation"
  done
fi
if wants graphs; then  # CUDA graphs (torch.compile's reduce-overhead mode) at the seed batches, with the time left
  bench previt-b32-graphs "$(limit 240 0)" --model previt --model-name-or-path "$PREVIT" $BF16 --batch-size 32 \
    --torch-compile --compile-mode reduce-overhead
  bench resnet-b128-graphs "$(limit 120 0)" --model resnet $B128 --torch-compile --compile-mode reduce-overhead
fi
wants bench && bench resnet "$(limit 45 0)" --model resnet $BF16 $B512
wants bench && bench vit "$(limit 45 0)" --model vit $BF16 $B512
wants compile && bench resnet-compiled "$(limit 90 0)" --model resnet $BF16 $B512 --torch-compile
wants compile && bench vit-compiled "$(limit 90 0)" --model vit $BF16 $B512 --torch-compile

python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
summary = {"runs": {}, "bench": {}, "tta": None, "without_tta": {}}
for path in glob.glob(f"{out}/runs/*/cifar-*/results.json"):
    results = json.load(open(path))
    state = json.load(open(os.path.join(os.path.dirname(path), "trainer_state.json")))
    summary["runs"][path.split("/")[-3]] = {**{k: v for k, v in results.items() if k != "hyperparameters"},
                                            "log_history": state["log_history"]}
for path in glob.glob(f"{out}/bench-*.json"):
    summary["bench"][os.path.basename(path)[6:-5]] = json.load(open(path))
for path in glob.glob(f"{out}/runs/*/plain/evaluation-validation.json"):
    summary["without_tta"][path.split("/")[-3]] = json.load(open(path))["accuracy"]
if os.path.exists(f"{out}/runs/tta/evaluation-validation.json"):
    summary["tta"] = json.load(open(f"{out}/runs/tta/evaluation-validation.json"))
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
for name, r in sorted(summary["runs"].items()):
    best = max(h["eval_accuracy"] for h in r["log_history"] if "eval_accuracy" in h)
    print(f"{name:12s} val {r['val_accuracy']:.4f} (best epoch {best:.4f}) train {r['train_runtime_s']:.1f}s "
          f"{r['train_samples_per_second']:.0f} img/s {r['hardware']} {r.get('distributed_type', '')}")
for name, accuracy in sorted(summary["without_tta"].items()):
    print(f"{name:18s} val without TTA {accuracy:.4f}")
if summary["tta"]:
    print(f"resnet-fast with flip TTA: val {summary['tta']['accuracy']:.4f}")
for name, b in sorted(summary["bench"].items()):
    peak = f"{b['peak_memory_bytes'] / 1e9:.2f} GB" if b["peak_memory_bytes"] else "-"
    print(f"bench {name:16s} ceiling {b['ceiling_samples_per_second']:.0f} project {b['project_samples_per_second']:.0f} "
          f"ratio {b['ratio']:.3f} syncs/step {b.get('host_syncs_per_step')} peak {peak}")
PY
rm -rf "$OUT/runs"  # models stay behind: only the measurements travel back
compgen -G "$OUT/bench-*.log" >/dev/null && cat "$OUT"/bench-*.log > "$OUT/bench.log"
rm -f "$OUT"/bench-*.json "$OUT"/bench-*.log
