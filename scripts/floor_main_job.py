"""The least time a finished online run's work can take on this CPU, stage by stage, beside
the time the run took: what no kernel, allocator or compiler setting can beat without
computing less.

    .venv/bin/python scripts/floor_main_job.py outputs/runs/<run>

(with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 for an AVX2-only machine's rates).

Counted from the run folder's own pairs and samples, laid out as the run lays them out (a
record's sequences under one prompt share it: data/packing.py): a forward is 2 FLOPs per
decoder weight per token, 2 per head weight per scored response token, and attention's
4 x hidden x layers per token and token it sees; training adds the backward (twice the
forward) and, with gradient checkpointing, the decoder's forward again (the head's backward
recomputes its logits in any case). Reference scoring and the after-training scoring are
forwards. Sampling: the prompts' prefill as FLOPs, then each decode step reads every weight
once (the memory bandwidth measured here) or computes its rows, whichever is slower. Rates:
a 2048 x 2048 float32 matmul (bench_step.py's probe) and a 1 GiB read (bench_generate.py's)."""

from __future__ import annotations

import sso_exp  # noqa: F401  (before torch: its CPU allocator setting, sso_exp/__init__.py)

# isort: split
import argparse
import json
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from bench_generate import generated_tokens, read_bandwidth  # scripts/, beside this one
from bench_step import matmul_peak
from omegaconf import OmegaConf


def rates() -> Dict[str, float]:
    """This CPU's float32 matmul FLOP/s and memory read bytes/s, as the benchmarks measure."""
    return {"flops": matmul_peak(torch.float32), "bytes": read_bandwidth(1.0)}


STAGES = ("training", "scoring", "after_scoring")
FILES = ("pairs.jsonl", "generated.jsonl")


class Shape:
    """The model's sizes that the counts need."""

    def __init__(self, model):
        c, params = model.config, sum(p.numel() for p in model.parameters())
        self.head = c.vocab_size * c.hidden_size
        self.decoder = params - self.head  # the embedding is tied to the head
        self.attention = 4 * c.hidden_size * c.num_hidden_layers
        self.bytes = params * 4  # float32


def group_counts(seqs) -> Dict[str, int]:
    """Tokens, attended (token, seen token) pairs and scored tokens of sequences packed into
    one row as training and scoring pack them (one row: no padding, so any pad id)."""
    from sso_exp.data.packing import pack

    row = pack(seqs, [list(range(len(seqs)))], pad_id=0)
    positions = row["position_ids"][0]
    return {
        "tokens": len(positions),
        "seen": int((positions + 1).sum()),
        "scored": len(row["targets"]),
    }


def forward_flops(shape: Shape, groups: Sequence[Sequence]) -> Dict[str, float]:
    """FLOPs of one forward over groups of sequences: decoder, head, attention."""
    total = {"tokens": 0, "seen": 0, "scored": 0}
    for seqs in groups:
        for k, v in group_counts(seqs).items():
            total[k] += v
    return {
        "decoder": 2 * shape.decoder * total["tokens"],
        "head": 2 * shape.head * total["scored"],
        "attention": shape.attention * total["seen"],
    }


def by_prompt(encoded: Dict[str, List], names: Sequence[str]) -> List[List]:
    """Each record's named sequences grouped by prompt, as scoring packs them."""
    from sso_exp.data.packing import prompt_groups

    lists = [encoded[n] for n in names]
    flat = [s for seqs in lists for s in seqs]
    return [[flat[k] for k in group] for group in prompt_groups(lists)]


def compute_floor(cfg, tok, shape: Shape, records: List[Dict], rate: Dict[str, float]):
    """(training, reference scoring, after-training scoring) floors in seconds."""
    from sso_exp.data.encoding import encode_records
    from sso_exp.training.objectives import policy_objective

    objective = policy_objective(cfg.loss, cfg.objective)
    encoded = encode_records(tok, records, objective.sequences(), cfg.schedule.max_length)
    pairs = [[f"{p}_chosen", f"{p}_rejected"] for p in objective.pairs]
    rows = [[encoded[a][i], encoded[b][i]] for a, b in pairs for i in range(len(records))]
    trained = forward_flops(shape, rows)
    checkpointing = cfg.trainer.gradient_checkpointing
    recompute = trained["decoder"] + trained["attention"] if checkpointing else 0
    train = 3 * sum(trained.values()) + trained["head"] + recompute
    ref = sum(forward_flops(shape, by_prompt(encoded, objective.scored())).values())
    after = sum(forward_flops(shape, by_prompt(encoded, ["main_chosen", "main_rejected"])).values())
    return train / rate["flops"], ref / rate["flops"], after / rate["flops"]


def sampling_floor(cfg, tok, shape: Shape, generated: List[Dict], rate: Dict[str, float]) -> float:
    """Prefill FLOPs, then per decode step the slower of reading the weights and computing
    the batch's rows; batches as the sampler forms them (length-sorted)."""
    from sso_exp.data.encoding import chat_prompt

    rows = []
    for rec in generated:
        for system, answer in (("p_system", "chosen"), ("n_system", "rejected"), (None, "raw")):
            prompt = chat_prompt(tok, rec[system] if system else None, rec["instruction"])
            prompt_tokens = len(tok(prompt, add_special_tokens=False).input_ids)
            rows.append((prompt_tokens, generated_tokens(tok, [rec[answer]])))
    rows.sort()
    seconds = sum(p for p, _ in rows) * 2 * shape.decoder / rate["flops"]
    size = cfg.generation.batch_size
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        steps = min(max(n for _, n in batch), cfg.generation.max_new_tokens)
        computed = 2 * (shape.decoder + shape.head) * len(batch) / rate["flops"]
        seconds += steps * max(shape.bytes / rate["bytes"], computed)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished online run's folder")
    run = parser.parse_args().run
    from sso_exp.config import validate
    from sso_exp.data.records import read_records
    from sso_exp.models.loading import load_policy
    from sso_exp.runtime.host import describe_machine

    cfg = validate(OmegaConf.load(run / "config.yaml"))
    model, tok = load_policy(cfg.model)
    shape, rate = Shape(model), rates()
    state = json.loads((run / "state.json").read_text())["stages"]
    print(f"machine: {describe_machine()}; torch kernels {torch.backends.cpu.get_cpu_capability()}")
    print(f"float32 matmul {rate['flops'] / 1e9:.0f} GFLOP/s, read {rate['bytes'] / 1e9:.1f} GB/s")
    print("| iteration | stage | floor s | took s | took / floor |\n|---|---|---|---|---|")
    total = [0.0, 0.0]
    for folder in sorted(run.glob("iter_*"), key=lambda p: int(p.name.split("_")[1])):
        records, generated = (read_records(folder / name) for name in FILES)
        floors = dict(zip(STAGES, compute_floor(cfg, tok, shape, records, rate)))
        floors["sampling"] = sampling_floor(cfg, tok, shape, generated, rate)
        took = {**state[f"{folder.name}/sample"], **state[f"{folder.name}/train"]}
        for stage, floor in floors.items():
            spent = took[f"time/{stage}_s"]
            total[0], total[1] = total[0] + floor, total[1] + spent
            print(f"| {folder.name} | {stage} | {floor:.1f} | {spent:.1f} | {spent / floor:.2f} |")
    print(f"floor_s={total[0]:.1f} took_s={total[1]:.1f}")


if __name__ == "__main__":
    main()
