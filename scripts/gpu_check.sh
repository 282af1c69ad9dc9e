#!/usr/bin/env bash
# The GPU check (issue 12), for a machine with a GPU; CI never has one and nothing depends on
# it. About 10 minutes on one H100/H200: the tests marked `gpu`, then one online iteration of
# a randomly initialised model with Qwen2-7B's shapes (SmolLM2's tokenizer) with trainer=gpu
# and LoRA, then the same with full fine-tuning on the GPUs under trainer=fsdp.
# Prints sampling and training tokens/s, training MFU against the GPU's bf16 peak
# (BF16_TFLOPS, default 989: H100/H200 SXM dense) and peak GPU memory.
#
#   bash scripts/gpu_check.sh            # from the repository root, after `make setup`
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/sso-gpu-check}
export BF16_TFLOPS=${BF16_TFLOPS:-989}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$PY" -m pytest -q -m gpu tests || echo "gpu tests: failed or none"
ARCH='model.arch={hidden_size:3584,intermediate_size:18944,num_hidden_layers:28,num_attention_heads:28,num_key_value_heads:4,max_position_embeddings:4096,attention_bias:true}'
COMMON=(model=tiny "$ARCH" model.dtype=bfloat16 schedule.iterations=1
  schedule.queries_per_iteration=32 generation.max_new_tokens=256 generation.batch_size=64
  scoring.batch_size=16 schedule.batch_size=2 schedule.grad_accum=4 trainer.precision=bf16-mixed
  "tracking.uri=sqlite:///$OUT/mlflow.db")
report() {  # $1: the run folder
  "$PY" - "$1" <<'PY'
import json, os, sys
s = {k: v for st in json.load(open(f"{sys.argv[1]}/state.json"))["stages"].values() for k, v in st.items()}
params = 7.07e9
sampled = s["pairs/generated"] * (s["length/chosen"] + s["length/rejected"] + s["length/raw"])
trained = s["pairs/kept"] * 6 * (s["length/chosen"] + s["length/rejected"]) / 2  # 3 pairs
flops = 6 * params * trained
print(f"sampling {sampled / s['time/sampling_s']:.0f} tok/s, training {trained / s['time/training_s']:.0f} tok/s, "
      f"MFU {flops / s['time/training_s'] / (float(os.environ['BF16_TFLOPS']) * 1e12):.1%}, "
      f"peak GPU memory {s.get('gpu/peak_memory_gb', float('nan')):.1f} GB")
PY
}
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" -m sso_exp "${COMMON[@]}" trainer=gpu model.lora.enabled=true "hydra.run.dir=$OUT/lora"
report "$OUT/lora"
GPUS=$(nvidia-smi -L | wc -l)
"$PY" -m sso_exp "${COMMON[@]}" trainer=fsdp trainer.accelerator=gpu "trainer.devices=$GPUS" \
  "hydra.run.dir=$OUT/full"
report "$OUT/full"
