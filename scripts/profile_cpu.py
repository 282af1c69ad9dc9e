"""Where a CPU's time goes in the three hot loops, for the policy in float32 (the path
`trainer.precision=auto` takes where bf16 is emulated): one training micro-batch (one
query's six sequences, forward and backward with gradient checkpointing, the head in
chunks, as the SSO step runs it), sampling (a batch of prompts decoded with the sampler's
own `generate_texts`), and the scoring pass (`score`, no gradient); the training
micro-batch also without gradient checkpointing (what the recompute costs).

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python scripts/profile_cpu.py

(the two variables give an AVX-512 machine an AVX2-only machine's kernels). Each loop runs
once to warm up, once timed (its wall time, and how far the process's resident memory rose
above its start: the live tensors and what the heap keeps beside them), then once under
torch.profiler; printed per loop: its wall time and memory growth, the share
of the operators' own CPU time by kind (matmul, attention, elementwise, memory movement,
other), the rate its matmuls reach against a large float32 matmul's here, and the five
costliest operators."""

from __future__ import annotations

import sso_exp  # noqa: F401  (before torch: its CPU allocator setting, sso_exp/__init__.py)

# isort: split
import argparse
import threading
import time
from collections import defaultdict
from typing import Callable, Dict, Tuple

import psutil
import torch
from torch.profiler import ProfilerActivity, profile

from sso_exp.runtime.memory import trim_heap

KINDS = {  # the first kind whose word an operator's name holds
    "matmul": ("mm", "matmul", "linear", "mkldnn", "onednn", "gemm"),
    "attention": ("attention", "softmax"),
    "memory movement": (
        "copy",
        "cat",
        "index",
        "gather",
        "scatter",
        "clone",
        "contiguous",
        "empty",
        "fill",
        "zero",
        "stack",
        "to_copy",
        "masked",
        "where",
    ),
    "elementwise": (
        "add",
        "mul",
        "silu",
        "rsqrt",
        "pow",
        "mean",
        "sum",
        "neg",
        "div",
        "sub",
        "exp",
        "log",
        "sigmoid",
        "tanh",
        "max",
        "sort",
        "topk",
        "multinomial",
    ),
}


def kind(name: str) -> str:
    name = name.lower()
    return next((k for k, words in KINDS.items() if any(w in name for w in words)), "other")


def peak_growth(fn: Callable[[], object]) -> Tuple[float, float]:
    """(seconds, GiB): `fn`'s wall time and the most the process's resident memory rose
    above its start while it ran (sampled every 2 ms, the heap trimmed first)."""
    trim_heap()
    me = psutil.Process()
    start_rss, peak, done = me.memory_info().rss, [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    return wall, max(0, peak[0] - start_rss) / 2**30


def profiled(label: str, fn: Callable[[], object]) -> None:
    fn()  # warm-up: allocations, oneDNN's kernel cache
    wall, growth = peak_growth(fn)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    ops = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in ops)
    shares: Dict[str, float] = defaultdict(float)
    for e in ops:
        shares[kind(e.key)] += e.self_cpu_time_total / total
    top = sorted(ops, key=lambda e: -e.self_cpu_time_total)[:5]
    mm = [e for e in ops if e.key in ("aten::mm", "aten::addmm", "aten::bmm")]
    rate = sum(e.flops for e in mm) / max(1e-9, sum(e.self_cpu_time_total for e in mm) / 1e6)
    print(f"\n{label}: {wall:.2f} s, memory +{growth:.2f} GiB; matmuls at {rate / 1e9:.0f} GFLOP/s")
    print(
        "  "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]))
    )
    for e in top:
        print(f"  {e.key:<40} {100 * e.self_cpu_time_total / total:5.1f}%  x{e.count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256, help="tokens per training sequence")
    parser.add_argument("--prompts", type=int, default=24, help="prompts sampled in one batch")
    parser.add_argument("--new-tokens", type=int, default=32)
    opts = parser.parse_args()
    from bench_step import matmul_peak  # scripts/, beside this one

    from sso_exp.config import compose
    from sso_exp.data.encoding import Encoded
    from sso_exp.data.packing import pack
    from sso_exp.models.generate import generate_texts
    from sso_exp.models.loading import load_policy
    from sso_exp.models.logprobs import score, sequence_logps
    from sso_exp.runtime.host import describe_machine

    cfg = compose("trainer.precision=32-true", "output_dir=/tmp/sso-exp-profile")
    model, tok = load_policy(cfg.model)
    model.float()
    gen = torch.Generator().manual_seed(0)
    prompt, answer = 60, opts.tokens - 60
    ids = lambda n: torch.randint(100, 40000, (n,), generator=gen).tolist()  # noqa: E731
    heads = [ids(prompt) for _ in range(3)]  # y+ / y- / y0 prompts, two answers each
    seqs = [Encoded(h + ids(answer), prompt) for h in heads for _ in range(2)]
    groups = [[0, 1], [2, 3], [4, 5]]
    batch = pack(seqs, groups, tok.pad_token_id)

    def train_step() -> None:
        model.train()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        out = sequence_logps(model, batch, cfg.trainer.logps_chunk)
        out.sum.sum().backward()
        model.zero_grad(set_to_none=True)

    texts = [tok.decode(ids(40)) for _ in range(opts.prompts)]
    sample = lambda: generate_texts(  # noqa: E731
        model, tok, texts, max_new_tokens=opts.new_tokens, batch_size=opts.prompts
    )
    scoring = lambda: score(model, seqs, tok.pad_token_id, 6, None, cfg.trainer.logps_chunk, groups)  # noqa: E731
    print(f"machine: {describe_machine()}; torch kernels {torch.backends.cpu.get_cpu_capability()}")
    print(f"a 2048 x 2048 float32 matmul here: {matmul_peak(torch.float32) / 1e9:.0f} GFLOP/s")
    profiled(f"training micro-batch (6 x {opts.tokens} tokens, fwd+bwd)", train_step)
    model.gradient_checkpointing_disable()
    model.gradient_checkpointing_enable = lambda **_: None  # the same step, layer inputs kept
    profiled("the same without gradient checkpointing", train_step)
    model.eval()
    profiled(f"sampling ({opts.prompts} prompts x {opts.new_tokens} new tokens)", sample)
    profiled(f"scoring (6 x {opts.tokens} tokens, no grad)", scoring)


if __name__ == "__main__":
    main()
