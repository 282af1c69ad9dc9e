"""Reward models on model=tiny: the reward sits at the last real token, and training learns
a planted preference that holds out of sample."""

import random

import pytorch_lightning as pl
import torch

from conftest import compose_cfg
from sso_exp.data.encoding import encode_pair
from sso_exp.data.packing import alone
from sso_exp.data.pairs import conversation_loader
from sso_exp.data.preferences import PrefPair
from sso_exp.models.loading import load_reward_model
from sso_exp.models.rewards import rewards, score_pairs
from sso_exp.training.optim import build
from sso_exp.training.reward_module import RewardModule

TOPICS = [
    "rain",
    "bread",
    "chess",
    "rivers",
    "music",
    "stars",
    "tea",
    "bikes",
    "maps",
    "clocks",
    "bees",
    "salt",
    "glass",
    "wolves",
    "paper",
    "kites",
]


def planted(n, seed):
    """Chosen answers are polite, rejected ones rude; prompts and wording vary."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        prompt = [{"role": "user", "content": f"Tell me about {topic} {rng.randint(0, 999)}."}]
        out.append(
            PrefPair(
                prompt,
                f"Thank you for asking about {topic}, happy to help.",
                f"No. {topic} is boring, go away.",
            )
        )
    return out


def test_reward_ignores_padding(tmp_path):
    cfg = compose_cfg(tmp_path, "model=tiny")
    rm, tok = load_reward_model(cfg.model, seed=0)
    enc = encode_pair(tok, planted(1, 0)[0], 128)
    single = rewards(rm, alone([enc["chosen"]], tok.pad_token_id))
    padded = rewards(rm, alone([enc["chosen"], enc["rejected"]], tok.pad_token_id))
    assert torch.allclose(single, padded[:1], atol=1e-5)


def test_learns_a_planted_preference(tmp_path):
    cfg = compose_cfg(tmp_path, "model=tiny", "schedule.lr_scheduler.warmup_ratio=0")
    rm, tok = load_reward_model(cfg.model, seed=0)
    train = [encode_pair(tok, p, 128) for p in planted(64, 1)]
    held_out = [encode_pair(tok, p, 128) for p in planted(32, 2)]
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    s = cfg.schedule
    trainer.fit(
        RewardModule(rm, build(s.optimizer), build(s.lr_scheduler), lr=1e-3),
        conversation_loader(train, 8, tok.pad_token_id, shuffle=True),
    )
    scores = score_pairs(rm, held_out, tok.pad_token_id, 16)
    assert (scores[:, 0] > scores[:, 1]).float().mean() >= 0.9
