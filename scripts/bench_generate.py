"""Tokens/s of the y+/y-/y0 sampling stage against sequential HF `generate` on the same prompts.

    .venv/bin/python scripts/bench_generate.py [--queries 8] [--baseline-prompts 9] [overrides ...]

The stage is the pipeline's own (the configured `Sampler` under the trainer config's
autocast): three chat prompts per query (p+ / p- as system prompts, and none), sampled with
the generation config's temperature, top-p, max_new_tokens and batch size. The baseline
calls `model.generate` once per prompt in float32 (no batching, no autocast) on the first
`--baseline-prompts` of the same prompts. Tokens are counted up to and including EOS. The
decode bound is a matmul peak measured here (in the stage's dtype) over 2 x parameters
FLOP per token, and a second one from the memory bandwidth measured here, the weights read
once per step for a batch's rows (the KV cache's reads and attention left out in both, so
the true bounds are lower). The last line reads `speedup=<stage tok/s / sequential tok/s>`.
`--queries 32` measures at the size of a 64-query iteration's sampling batches."""

from __future__ import annotations

import sso_exp  # noqa: F401  (before torch: its CPU allocator setting, sso_exp/__init__.py)

# isort: split
import argparse
import time

import torch


def stage_prompts(cfg, n: int):
    """(system, query) for y+, y- and y0 of the first n demo queries, steered by the first
    two predefined features."""
    from sso_exp.data.records import load_prompts
    from sso_exp.steering.principles import steer

    st = steer([f.name for f in cfg.principle.features[:2]], cfg.principle)
    return [
        (system, q)
        for q in load_prompts(cfg.data.prompts)[:n]
        for system in (st.p_system, st.n_system, None)
    ]


def read_bandwidth(gib: float = 0.5) -> float:
    """Bytes/s one reduction reads from memory (a tensor far larger than the caches): a
    decode step at a small batch reads every weight once and does little else with it."""
    x = torch.ones(int(gib * 2**30) // 4)
    x.sum()
    start = time.perf_counter()
    for _ in range(5):
        x.sum()
    return 5 * x.numel() * 4 / (time.perf_counter() - start)


def generated_tokens(tok, texts) -> int:
    return sum(len(tok(t, add_special_tokens=False).input_ids) + 1 for t in texts)


@torch.no_grad()
def sequential(model, tok, prompts, s) -> list:
    """One `generate` per prompt: what a first implementation does."""
    tok.padding_side = "left"
    texts = []
    for text in prompts:
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=0,
            max_new_tokens=s.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        texts.append(tok.decode(out[0, enc.input_ids.shape[1] :], skip_special_tokens=True).strip())
    return texts


def main() -> None:
    from bench_step import matmul_peak  # scripts/, beside this one

    from sso_exp.config import compose
    from sso_exp.data.encoding import chat_prompt
    from sso_exp.distributed import stream_seed
    from sso_exp.models.device import AUTOCAST, autocast
    from sso_exp.models.loading import load_policy
    from sso_exp.runtime.host import describe_machine
    from sso_exp.steering.sampling import make_sampler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--baseline-prompts", type=int, default=9)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (trainer.precision=...)")
    args = parser.parse_args()
    cfg = compose(*args.overrides)
    model, tok = load_policy(cfg.model)
    g = cfg.generation
    prompts = stage_prompts(cfg, args.queries)
    print(
        f"{len(prompts)} prompts, max_new_tokens={g.max_new_tokens}, batch "
        f"{g.batch_size}, precision {cfg.trainer.precision}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    torch.manual_seed(0)
    start = time.perf_counter()
    with autocast(cfg.trainer):
        seeds = [stream_seed(cfg.schedule.seed, i) for i in range(len(prompts))]
        texts = make_sampler(model, tok, g, cfg.schedule.seed).sample(
            prompts, g.max_new_tokens, "y+/y-/y0", seeds
        )
    stage_s = time.perf_counter() - start
    stage_tps = generated_tokens(tok, texts) / stage_s
    chats = [chat_prompt(tok, system, q) for system, q in prompts[: args.baseline_prompts]]
    start = time.perf_counter()
    base = sequential(model, tok, chats, g)
    base_s = time.perf_counter() - start
    base_tps = generated_tokens(tok, base) / base_s
    print("| sampler | prompts | tokens | seconds | tokens/s |\n|---|---|---|---|---|")
    print(
        f"| sequential generate, fp32 | {len(chats)} | {generated_tokens(tok, base)} | "
        f"{base_s:.1f} | {base_tps:.1f} |"
    )
    print(
        f"| y+/y-/y0 stage | {len(prompts)} | {generated_tokens(tok, texts)} | "
        f"{stage_s:.1f} | {stage_tps:.1f} |"
    )
    dtype = AUTOCAST.get(cfg.trainer.precision, torch.float32)
    params = sum(p.numel() for p in model.parameters())
    bound = matmul_peak(dtype) / (2 * params)
    print(
        f"decode bound ({str(dtype)[6:]} matmul peak / 2 x params): {bound:.0f} tok/s; "
        f"the stage at {stage_tps / bound:.1%} of it"
    )
    bandwidth, rows = read_bandwidth(), min(g.batch_size, len(prompts))
    bound = bandwidth * rows / (params * torch.finfo(dtype).bits // 8)
    print(
        f"decode bound (memory: {bandwidth / 1e9:.1f} GB/s read, the weights read once a step "
        f"for {rows} rows): {bound:.0f} tok/s; the stage at {stage_tps / bound:.1%} of it"
    )
    print(f"machine: {describe_machine()}")
    print(f"speedup={stage_tps / base_tps:.2f}")


if __name__ == "__main__":
    main()
