"""The vocabulary projection's log-probs and gradients (models/logprobs.py `HeadLogps`) at the
size of one training micro-batch of the default schedule, per `trainer.logps_chunk`.

    .venv/bin/python scripts/bench_head.py [--rows 950 470] [--chunks 128 256 512 0]

Inputs are random, in the embedded model's head shape (its hidden size and vocabulary): two
calls per micro-batch, as a training step makes (the steered pairs' forward and the bare
one's), each forward then backward. Also printed: one chunk's logits matmul writing a fresh
tensor against writing a reused one, the cost HeadLogps avoids by keeping one buffer per
call (a fresh tensor above glibc's largest mmap threshold, 32 MB, is mapped and page-faulted
on every call). Times are the best of `--repeats` after a warm-up (and compiling)."""

from __future__ import annotations

import argparse
import time

import torch


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def head_shape():
    from transformers import AutoConfig

    from sso_exp.config import compose
    from sso_exp.models.loading import gguf_cache

    c = AutoConfig.from_pretrained(gguf_cache(compose().model))
    return c.hidden_size, c.vocab_size


def micro_batch(head, rows, chunk: int, compiled: bool, dtype):
    """One micro-batch's HeadLogps calls, forward and backward."""
    from sso_exp.models.logprobs import response_logps

    def run():
        for n in rows:
            hidden = torch.randn(n, head.in_features, dtype=dtype, requires_grad=True)
            targets = torch.randint(0, head.out_features, (n,))
            response_logps(head, hidden, targets, chunk, compiled).sum().backward()
        head.weight.grad = None

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[950, 470])
    ap.add_argument("--chunks", type=int, nargs="+", default=[128, 256, 512, 0])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    from sso_exp.runtime.host import describe_machine

    dtype = getattr(torch, args.dtype)
    hidden, vocab = head_shape()
    head = torch.nn.Linear(hidden, vocab, bias=False).to(dtype)
    print(f"machine: {describe_machine()}; head {hidden} x {vocab}, {args.dtype}, rows {args.rows}")
    for compiled in (False, True):
        for chunk in args.chunks:
            s = best_time(micro_batch(head, args.rows, chunk, compiled, dtype), args.repeats)
            print(f"compiled={compiled} logps_chunk={chunk}: {s:.3f} s a micro-batch")
    h, w = torch.randn(512, hidden, dtype=dtype), head.weight.detach()
    reused = torch.empty(512, vocab, dtype=dtype)
    fresh = best_time(lambda: torch.mm(h, w.T), args.repeats)
    kept = best_time(lambda: torch.mm(h, w.T, out=reused), args.repeats)
    print(
        f"512 rows' logits into a fresh tensor: {fresh * 1e3:.1f} ms, into a reused one: "
        f"{kept * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
