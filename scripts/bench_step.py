"""One SSO optimizer step against one of TRL's DPOTrainer, same model, queries, lengths, dtype.

    .venv/bin/python scripts/bench_step.py [--queries 4] [--tokens 256] [--steps 3] [overrides ...]

Our step is the real training path (config -> encode -> reference scored once under no_grad
-> SSOPolicyModule in a Lightning Trainer): three pairs (six sequences) per query, IPO + G + W,
the bf16 row with `trainer=fast model.attn_implementation=eager` (bf16 weights, fp32 master
copies, compiled decoder layers and attention, glibc heap kept), the fp32 row as
`trainer.precision=auto` runs float32 (the default trainer at 32-true: uncompiled, the
model's attention kernel, glibc's own heap settings), what an AVX2-only CPU gets.
TRL's step is its DPOTrainer with its defaults (a reference forward every step), one pair
per query. Hydra overrides (e.g. trainer.logps_chunk=0) change our side only. Each
measurement runs in a fresh process so its peak RSS is its own; times are medians over
`--steps` steps after one warm-up step. MFU counts 6 x params x tokens (+ attention) per
trained token and 2 x params x tokens per reference token, against a matmul peak measured
here for the dtype. bf16 is measured only where the CPU computes it natively (as
`trainer.precision=auto` decides; `--dtypes` asks for others). The last line reads
`ratio=<SSO q/s / TRL pairs/s> mfu=<SSO MFU> peak_rss_gb=<SSO peak RSS>` of the last dtype."""

from __future__ import annotations

import sso_exp  # noqa: F401  (before torch: its CPU allocator setting, sso_exp/__init__.py)

# isort: split
import argparse
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

PRECISION = {"float32": "32-true", "bfloat16": "bf16-true"}
OURS = {  # per precision: where bf16 is fast, auto compiles (trainer=fast); float32 it does not
    "bf16-true": ["trainer=fast", "model.attn_implementation=eager"],
    "32-true": ["trainer.compile=false"],
}


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of the best of `reps` n x n matmuls: the dtype's practical peak here."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 2):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def default_dtypes():
    """float32, and bfloat16 only where this CPU computes it natively, as
    `trainer.precision=auto` decides: where bf16 is emulated (AVX2 only) its matmul probe
    alone takes many minutes and the figure says nothing a user would run."""
    from sso_exp.config import TrainerConfig
    from sso_exp.config.machine import fast_bf16

    fast, why = fast_bf16(TrainerConfig(accelerator="cpu"))
    return (["float32", "bfloat16"] if fast else ["float32"]), why


def records(tok, queries: int, tokens: int):
    """`queries` demo queries with responses sized so each sequence is ~`tokens` long."""
    from sso_exp.data.records import load_prompts

    filler = "The answer weighs each point with care, gives an example and checks it. "
    per = len(tok(filler, add_special_tokens=False).input_ids)
    out = []
    for i, q in enumerate(load_prompts(None)[:queries]):
        n = max(1, (tokens - 60) // per)
        text = lambda tag, i=i, n=n: f"{tag} {i}. " + filler * n  # noqa: E731
        out.append(
            {
                "instruction": q,
                "chosen": text("Yes"),
                "rejected": text("No"),
                "raw": text("Maybe"),
                "p_system": "Be thorough and kind.",
                "n_system": "Be curt and careless.",
                "history": [],
            }
        )
    return out


def sso_step_times(overrides, precision: str, queries: int, tokens: int, steps: int):
    """Step times, trained tokens per step, reference tokens per step (none: scored once)."""
    import pytorch_lightning as pl

    from sso_exp.config import compose
    from sso_exp.data.encoding import encode_records, sequence_names
    from sso_exp.data.pairs import PairDataset, loader
    from sso_exp.models.device import autocast
    from sso_exp.models.loading import load_policy
    from sso_exp.models.logprobs import score_named, shares_prefixes
    from sso_exp.training.fit import make_trainer
    from sso_exp.training.objectives import policy_objective
    from sso_exp.training.optim import build
    from sso_exp.training.policy_module import SSOPolicyModule

    times: list = []

    class Timer(pl.Callback):
        def on_train_batch_start(self, *args):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *args):
            times.append(time.perf_counter() - self.t0)

    tmp = Path(tempfile.mkdtemp())
    cfg = compose(
        *OURS[precision],
        f"schedule.batch_size={queries}",
        "schedule.grad_accum=1",
        f"schedule.max_length={tokens + 64}",
        f"trainer.precision={precision}",
        *overrides,
    )
    model, tok = load_policy(cfg.model)
    objective = policy_objective(cfg.loss, cfg.objective)
    encoded = encode_records(
        tok,
        records(tok, queries, tokens) * (steps + 1),
        objective.sequences(),
        cfg.schedule.max_length,
    )
    with autocast(cfg.trainer):  # once per iteration in the pipeline: not part of the step
        scores = score_named(
            model,
            {n: encoded[n] for n in objective.scored()},
            tok.pad_token_id,
            cfg.scoring.batch_size,
            cfg.trainer.logps_chunk,
        )
    data = loader(
        PairDataset(encoded, objective.pairs, scores),
        queries,
        tok.pad_token_id,
        shuffle=False,
        seed=0,
        share=shares_prefixes(model),
    )
    trainer = make_trainer(cfg.trainer, cfg.schedule, False, tmp, epochs=1)
    trainer.callbacks.append(Timer())
    s = cfg.schedule
    trainer.fit(
        SSOPolicyModule(model, objective, build(s.optimizer), build(s.lr_scheduler), cfg.trainer),
        data,
    )
    trained = sum(
        len(encoded[n][i].ids) for n in sequence_names(objective.pairs) for i in range(queries)
    )
    return times[1:], trained, 0


def trl_step_times(precision: str, queries: int, tokens: int, steps: int):
    """TRL's step times; its reference model runs on every step's tokens again."""
    from trl_dpo import trl_dpo_step_times

    from sso_exp.data.encoding import encode_records
    from sso_exp.models.loading import load_tokenizer

    path = model_dir()
    tok = load_tokenizer(path)
    recs = records(tok, queries, tokens)
    rows = [
        {
            "prompt": [{"role": "user", "content": r["instruction"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}],
        }
        for r in recs
    ]
    dtype = "bfloat16" if precision.startswith("bf16") else "float32"  # TRL's bf16: autocast
    times = trl_dpo_step_times(str(path), rows, dtype, tokens + 64, steps + 1)
    enc = encode_records(tok, recs, ["main_chosen", "main_rejected"], tokens + 64)
    trained = sum(len(e.ids) for seqs in enc.values() for e in seqs)
    return times[1:], trained, trained


def model_dir() -> Path:
    from sso_exp.config import compose
    from sso_exp.models.loading import gguf_cache

    return gguf_cache(compose().model)


def flops_per_token(seq_len: int):
    """(trained, reference-only) FLOPs per token of the embedded model: 6N (+ attention)
    with a backward pass, 2N (+ attention) without; N counted on the meta device."""
    from transformers import AutoConfig, AutoModelForCausalLM

    c = AutoConfig.from_pretrained(model_dir())
    with torch.device("meta"):
        n = sum(p.numel() for p in AutoModelForCausalLM.from_config(c).parameters())
    attn = 2 * c.num_hidden_layers * c.hidden_size * seq_len
    return 6 * n + 6 * attn, 2 * n + 2 * attn


def measure(which: str, overrides, precision: str, queries: int, tokens: int, steps: int, out):
    torch.manual_seed(0)
    if which == "sso":
        times, trained, ref = sso_step_times(overrides, precision, queries, tokens, steps)
    else:
        times, trained, ref = trl_step_times(precision, queries, tokens, steps)
    out.put(
        {
            "step_s": statistics.median(times),
            "trained": trained,
            "ref": ref,
            "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        }
    )


def run(which, overrides, precision, args) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=measure,
        args=(which, overrides, precision, args.queries, args.tokens, args.steps, out),
    )
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"the {which} measurement failed (exit code {proc.exitcode})")
    return out.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dtypes", help="default: float32, and bfloat16 where native")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for our side")
    args = parser.parse_args()
    dtypes, why = default_dtypes() if args.dtypes is None else (args.dtypes.split(","), "asked")
    rows = []
    train_f, ref_f = flops_per_token(args.tokens)
    from sso_exp.runtime.host import describe_machine

    print(
        f"{args.queries} queries x ~{args.tokens} tokens, median of {args.steps} steps, "
        f"{torch.get_num_threads()} threads; overrides: {' '.join(args.overrides)}\n"
        f"machine: {describe_machine()}\ndtypes: {', '.join(dtypes)} ({why})"
    )
    header = (
        "dtype",
        "peak TFLOP/s",
        "SSO q/s",
        "TRL pairs/s",
        "ratio",
        "SSO MFU",
        "TRL MFU",
        "SSO RSS GB",
        "TRL RSS GB",
    )
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    for dtype in dtypes:
        peak = matmul_peak(getattr(torch, dtype))
        sso = run("sso", args.overrides, PRECISION[dtype], args)
        trl = run("trl", [], PRECISION[dtype], args)

        def mfu(r, peak=peak):
            return (train_f * r["trained"] + ref_f * r["ref"]) / r["step_s"] / peak

        row = {
            "dtype": dtype,
            "sso_qps": args.queries / sso["step_s"],
            "trl_pps": args.queries / trl["step_s"],
            "sso_mfu": mfu(sso),
            "trl_mfu": mfu(trl),
            "rss": sso["rss_gb"],
        }
        row["ratio"] = row["sso_qps"] / row["trl_pps"]
        rows.append(row)
        print(
            f"| {dtype} | {peak / 1e12:.3f} | {row['sso_qps']:.3f} | {row['trl_pps']:.3f} | "
            f"{row['ratio']:.2f} | {row['sso_mfu']:.1%} | {row['trl_mfu']:.1%} | "
            f"{sso['rss_gb']:.2f} | {trl['rss_gb']:.2f} |",
            flush=True,
        )
    last = rows[-1]
    print(f"ratio={last['ratio']:.2f} mfu={last['sso_mfu']:.3f} peak_rss_gb={last['rss']:.2f}")


if __name__ == "__main__":
    main()
