"""Online SSO (DESIGN.md section 4): each iteration the current policy writes its own
principle-steered pairs, is trained on them, and becomes the next iteration's policy and
reference. Everything an iteration writes stays on disk and in MLflow whatever follows."""
from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl
from omegaconf import OmegaConf

from ..config import SSOConfig, SSOError
from ..data import load_prompts, write_jsonl
from ..dataset import ON_POLICY, encode_records
from ..models import check_available, load_policy, save_policy
from ..pair_builder import build_pairs
from ..report import summary_table
from ..tracking import RunLogger, start_run
from ..train import fit_policy, needed_sequences, score_sequences, scored_names

log = logging.getLogger(__name__)
DROP_RULES = ("short", "chosen_eq_rejected", "rejected_eq_raw", "chosen_eq_raw")


class EmptyIteration(SSOError):
    """The filter dropped every pair of an iteration and `mode.on_empty=stop`."""


def iteration_queries(prompts: List[str], n: int, iteration: int, seed: int) -> List[str]:
    """Iteration k's n queries: the next slice of one seeded shuffle, wrapping around."""
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    start = (iteration - 1) * n
    return [prompts[order[(start + i) % len(order)]] for i in range(n)]


def generation_stats(generated: int, kept: int, drops: Counter, scores) -> Dict[str, float]:
    stats = {"pairs/generated": generated, "pairs/kept": kept,
             "pairs/drop_rate": 1 - kept / max(generated, 1)}
    stats.update({f"pairs/dropped/{rule}": drops.get(rule, 0) for rule in DROP_RULES})
    if kept:
        for name, label in zip(ON_POLICY, ("chosen", "rejected", "raw")):
            stats[f"onpolicy/{label}"] = float(scores[name].mean.mean())
            stats[f"length/{label}"] = float(scores[name].count.mean())
    return stats


def run_iteration(model, tok, cfg: SSOConfig, logger: RunLogger, iteration: int,
                  queries: List[str], run_dir: Path) -> Dict[str, float]:
    """Sample, filter, write, score, train, save: one iteration's row of the summary."""
    it_dir = run_dir / f"iter_{iteration}"
    pl.seed_everything(cfg.schedule.seed + iteration, workers=True, verbose=False)
    kept, generated, drops = build_pairs(model, tok, queries, cfg,
                                         random.Random(cfg.schedule.seed + iteration))
    write_jsonl(kept, it_dir / "pairs.jsonl")
    write_jsonl(generated, it_dir / "generated.jsonl")
    logger.log_file(it_dir / "pairs.jsonl", f"iter_{iteration}")
    encoded = encode_records(tok, kept, needed_sequences(cfg), cfg.schedule.max_length)
    scores = score_sequences(model, {n: encoded[n] for n in scored_names(cfg)},
                             tok.pad_token_id, cfg.schedule.generation_batch_size)
    row = generation_stats(len(generated), len(kept), drops, scores)
    logger.log_iteration(iteration, row)
    if not kept:
        msg = (f"iteration {iteration}: the filter dropped all {len(generated)} pairs "
               f"({dict(drops)}); the samples are in {it_dir / 'generated.jsonl'}")
        if cfg.mode.on_empty == "stop":
            raise EmptyIteration(msg + "; stopping (mode.on_empty=continue goes on)")
        log.warning("%s; going on with the policy unchanged", msg)
        return {"iteration": iteration, **row}
    train = fit_policy(model, tok, encoded, scores, cfg, logger, iteration, run_dir)
    logger.log_iteration(iteration, {f"train/{k}": v for k, v in train.items()})
    save_policy(model, tok, it_dir / "policy")
    return {"iteration": iteration, **row, **{f"train/{k}": v for k, v in train.items()}}


def run_online(cfg: SSOConfig) -> List[Dict[str, float]]:
    """The whole online job; returns one summary row per iteration."""
    prompts = load_prompts(cfg.data.prompts)  # bad input fails here, before any work
    check_available(cfg.model)
    run_dir = Path(cfg.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.yaml"
    config_file.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    logger = start_run(cfg, cfg.tracking, config_file)
    log.info("MLflow run %s in %s", logger.run_id, cfg.tracking.uri)
    rows: List[Dict[str, float]] = []
    status = "FAILED"
    try:
        model, tok = load_policy(cfg.model, cfg.schedule.seed)
        model.to("cuda" if cfg.accelerator == "gpu" else "cpu")
        for it in range(1, cfg.schedule.iterations + 1):
            queries = iteration_queries(prompts, cfg.schedule.queries_per_iteration, it,
                                        cfg.schedule.seed)
            rows.append(run_iteration(model, tok, cfg, logger, it, queries, run_dir))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if rows:
            table = summary_table(rows)
            (run_dir / "summary.md").write_text(table + "\n")
            logger.log_file(run_dir / "summary.md")
            print("\n" + table)
        logger.close(status)
    return rows
