"""How often the policy follows each verifiable family (docs/algorithm.md §1, "Why these
families"): every family of a `principle` option forced in turn on the same queries, one
round of y+, y-, y0 sampled by the untrained model, each answer judged by IFEval's checker.
Prints, per family, how many y+ satisfy the good constraint, y- the bad one, y0 either, and
the machine.

    .venv/bin/python scripts/probe_families.py                 # principle=verifiable_formats
    .venv/bin/python scripts/probe_families.py --queries 32 --tokens 128 model=qwen2"""

from __future__ import annotations

import argparse
from dataclasses import replace

from sso_exp.config import compose
from sso_exp.data.records import load_prompts
from sso_exp.evaluation.verifier import verify
from sso_exp.models.device import device
from sso_exp.models.loading import load_policy
from sso_exp.runtime.host import describe_machine
from sso_exp.steering.rounds import build_round
from sso_exp.steering.sampling import make_sampler

COUNTS = ("chosen_follows", "rejected_follows_bad", "raw_follows", "raw_follows_bad")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--principle", default="verifiable_formats", help="a principle option")
    p.add_argument("--queries", type=int, default=16, help="queries per family")
    p.add_argument("--tokens", type=int, default=64, help="answer budget of y+, y-, y0")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. model=qwen2")
    a = p.parse_args()
    cfg = compose(f"principle={a.principle}", *a.overrides)
    model, tok = load_policy(cfg.model, cfg.schedule.seed)
    model.to(device(cfg.trainer)).eval()
    sampler = make_sampler(model, tok, cfg.generation, cfg.schedule.seed)
    queries = load_prompts(cfg.data.prompts)[: a.queries]
    print(f"machine: {describe_machine()}")
    print(f"{len(queries)} queries per family, answers up to {a.tokens} tokens; counts of:")
    print("| family | y+ good | y- bad | y0 good | y0 bad | y+ good, y- not |")
    print("|---|---:|---:|---:|---:|---:|")
    for family in cfg.principle.verifiable:
        one = replace(cfg.principle, verifiable=[family])
        key = (cfg.schedule.seed, 1, family.name)
        rows = verify(build_round(sampler, queries, one, cfg.filter, a.tokens, key).generated)
        n = {k: sum(r["outcomes"][k] for r in rows) for k in (*COUNTS, "verified_accuracy")}
        print(f"| {family.name} | " + " | ".join(str(n[k]) for k in COUNTS)
              + f" | {n['verified_accuracy']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
