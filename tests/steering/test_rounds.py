"""A round through the Sampler interface alone: the writer is asked for features, then (with
principle.generate) principles, then y+ under p+, y- under p- and y0 with no system prompt;
the filters decide which triples become pairs."""

import torch

from conftest import compose_cfg
from sso_exp.data.pairs import SeqLogps
from sso_exp.steering.rounds import build_round


class ScriptedSampler:
    """Answers by what is asked; records every call (chats, budget, stage)."""

    def __init__(self, principles: str = "no json here"):
        self.calls, self.principles = [], principles

    def sample(self, chats, max_new_tokens, desc, seeds):
        assert len(seeds) == len(chats) == len(set(seeds))  # a stream per sequence
        self.calls.append((list(chats), max_new_tokens, desc))
        if desc == "features":
            return ["Accuracy, Safety"] * len(chats)
        if desc == "principles":
            return [self.principles] * len(chats)
        replies = {0: "a careful good answer", 1: "a sloppy bad answer", 2: "a plain answer"}
        return [replies[i % 3] + f" {i // 3}" for i in range(len(chats))]


def test_triples_are_sampled_under_p_plus_p_minus_and_no_system(tmp_path):
    cfg = compose_cfg(tmp_path)
    sampler = ScriptedSampler()
    rnd = build_round(sampler, ["q1", "q2"], cfg.principle, cfg.filter, 99, (42, 1, ""))
    assert [c[2] for c in sampler.calls] == ["features", "y+/y-/y0"]
    chats, budget, _ = sampler.calls[1]
    assert budget == 99 and [c[1] for c in chats] == ["q1"] * 3 + ["q2"] * 3
    systems = [c[0] for c in chats[:3]]
    assert systems[0].startswith("Your response should be") and systems[2] is None
    assert "Accurate" in systems[0] and "Inaccurate" in systems[1]
    assert [r["chosen"] for r in rnd.kept] == ["a careful good answer 0", "a careful good answer 1"]
    assert [r["raw"] for r in rnd.generated] == ["a plain answer 0", "a plain answer 1"]


def test_generated_principles_fall_back_when_unparsed(tmp_path):
    cfg = compose_cfg(tmp_path, "principle=generated")
    good = '{"good_principle": "Cite sources.", "bad_principle": "Invent sources."}'
    for reply, fallback in (("no json here", 1.0), (good, 0.0)):
        rnd = build_round(ScriptedSampler(reply), ["q"], cfg.principle, cfg.filter, 9, (42, 1, ""))
        assert rnd.stats["principles/fallback_rate"] == fallback
        assert ("Cite sources." in rnd.generated[0]["p_system"]) == (fallback == 0.0)


def test_the_logprob_filter_scores_the_kept_records(tmp_path):
    cfg = compose_cfg(tmp_path, "filter=logprob")
    asked = []

    def scorer(records, names):  # 1 breaks the order; 0 and 2 follow it, 2 with wider gaps
        asked.append((len(records), tuple(names)))
        means = {n: [0.0, 0.0, 0.0] for n in names}
        means.update(
            main_chosen=[-2.0, -2.0, -2.0],
            p_chosen=[-1.0, -3.0, -0.5],
            n_rejected=[-3.0, -1.0, -3.5],
            main_rejected=[-2.0, -2.0, -2.0],
            pminus_yminus=[-1.0, -2.5, -0.5],
            p_rejected=[-3.0, -3.0, -3.5],
        )
        return {n: SeqLogps(torch.tensor(v), torch.ones(3)) for n, v in means.items()}

    queries = ["q1", "q2", "q3"]
    rnd = build_round(ScriptedSampler(), queries, cfg.principle, cfg.filter, 9, (42, 1, ""), scorer)
    assert asked and asked[0][0] == 3
    assert [r["instruction"] for r in rnd.kept] == ["q3"]
    assert rnd.drops["logprob_order"] == 1 and rnd.drops["logprob_gap"] == 1
