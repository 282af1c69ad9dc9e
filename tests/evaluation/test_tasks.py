"""Evaluation tasks end to end on the tiny random policy with scripted judges: metrics equal
hand-computed values, the judge sees the right items (MT-Bench references only where they
belong, turn 2 with turn 1's conversation), and bad input names its file and line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest
from test_fastchat import prompts_file
from test_winrate import _gamed_file

from conftest import FIXTURES
from sso_exp.errors import DataError
from sso_exp.evaluation import tasks
from sso_exp.evaluation.judges import LLMJudge, PolicyBackend
from sso_exp.models.generate import Answers

GEN = {"max_new_tokens": 6, "batch_size": 2}


class PreferOnly:
    """A judge returning scripted preferences in order (like a reward model: no `rate`)."""

    def __init__(self, prefs: Sequence[Optional[float]]):
        self.prefs = list(prefs)
        self.items: List[tuple] = []

    def prefer(self, items):
        self.items += items
        return [self.prefs.pop(0) for _ in items]


class Rater(PreferOnly):
    """Also rates: the rating of a conversation is looked up by (first question, turn)."""

    def __init__(self, ratings: Dict[tuple, Optional[float]]):
        super().__init__([])
        self.ratings = ratings
        self.rated: List[tuple] = []

    def rate(self, items, prompt=None, max_new_tokens=None):
        self.rated += items
        self.asked = [prompt(conv, refs) for conv, refs in items] if prompt else []
        self.budget = max_new_tokens
        return [self.ratings[(conv[0]["content"], len(conv) // 2)] for conv, _ in items]


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_answer_is_greedy_and_in_order(tiny):
    model, tok = tiny
    prompts = ["Hi", "Tell me a long story about a dragon and a knight.", "2+2?"]
    first = tasks.answer(model, tok, prompts, **GEN)
    assert len(first.texts) == 3 and all(isinstance(a, str) for a in first.texts)
    assert first.cut == [True] * 3  # 6 tokens: the random model never ends by itself
    assert tasks.answer(model, tok, prompts, **GEN) == first
    assert tasks.answer(model, tok, prompts[1:2], **GEN).texts == first.texts[1:2]


def test_alpaca_eval_metrics_by_hand(tiny, tmp_path):
    rows = [{"instruction": f"Question {i}?", "output": "ref " * (i + 1)} for i in range(4)]
    rows.insert(2, {"instruction": "Empty reference", "output": "  "})
    path = write_jsonl(tmp_path / "alpaca.jsonl", rows)
    judge = PreferOnly([1.0, 0.0, 1.0, None])
    result = tasks.alpaca_eval(*tiny, judge, path, limit=None, **GEN)
    m = result.metrics
    assert m["alpaca/win_rate"] == pytest.approx(200 / 3)
    assert m["alpaca/win_rate_se"] == pytest.approx(100 * math.sqrt(1 / 3) / math.sqrt(3))
    assert (m["alpaca/n"], m["alpaca/unparsed"], m["alpaca/skipped"]) == (3, 1, 1)
    assert 0 < m["alpaca/lc_win_rate_approx"] < 100 and "alpaca/lc_win_rate_approx_se" in m
    assert "alpaca/lc_win_rate" not in m  # without the difficulties: only the approximation
    outputs = [r["output"] for r in result.rows]
    assert m["alpaca/mean_length"] == pytest.approx(sum(map(len, outputs)) / 4)
    kept = [r for r in rows if r["output"].strip()]
    assert [(r["instruction"], r["reference"], r["preference"]) for r in result.rows] == [
        (r["instruction"], r["output"], p) for r, p in zip(kept, [1.0, 0.0, 1.0, None])
    ]
    assert judge.items == [(r["instruction"], o, r["output"]) for r, o in zip(kept, outputs)]


def test_alpaca_eval_on_shared_data_a_small_local_judge_always_annotates(tiny, data_dir):
    """AlpacaEval's weighted annotator reads the verdict tokens' probabilities, so even a
    random policy as judge gives every item a preference; the MT-Bench pairwise prompt
    (annotator=pairwise) needs a written verdict, which it never gives."""
    path = data_dir / "alpaca_eval_gpt4_turbo.jsonl"
    judge = LLMJudge(PolicyBackend(*tiny, max_new_tokens=4, batch_size=4))
    m = tasks.alpaca_eval(*tiny, judge, path, limit=2, **GEN).metrics
    assert m["alpaca/n"] == 2 and m["alpaca/unparsed"] == 0 and 0 <= m["alpaca/win_rate"] <= 100
    result = tasks.alpaca_eval(*tiny, judge, path, limit=2, annotator="pairwise", **GEN)
    assert result.metrics["alpaca/n"] == 0 and result.metrics["alpaca/unparsed"] == 2
    assert not any("win_rate" in k for k in result.metrics)
    assert [r["preference"] for r in result.rows] == [None, None] and judge.unparsed == 4


MT_QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["W1", "W2"], "reference": ["x", "y"]},
    {"question_id": 2, "category": "math", "turns": ["M1", "M2"], "reference": ["m1", "m2"]},
    {"question_id": 3, "category": "reasoning", "turns": ["R1", "R2"]},
    {"question_id": 4, "category": "coding", "turns": ["C1", "C2"]},
]
MT_RATINGS = {
    ("W1", 1): 8.0,
    ("W1", 2): 6.0,
    ("M1", 1): 2.0,
    ("M1", 2): None,
    ("R1", 1): 5.0,
    ("R1", 2): 7.0,
    ("C1", 1): 10.0,
    ("C1", 2): 4.0,
}


def test_mt_bench_references_turns_and_means(tiny, tmp_path):
    questions = write_jsonl(tmp_path / "q.jsonl", MT_QUESTIONS)
    refs = write_jsonl(
        tmp_path / "ref.jsonl",
        [
            {"question_id": 1, "choices": [{"turns": ["not", "used"]}]},
            {"question_id": 3, "choices": [{"turns": ["r1", "r2"]}]},
        ],
    )
    judge = Rater(MT_RATINGS)
    result = tasks.mt_bench(*tiny, judge, questions, limit=None, reference_path=refs, **GEN)

    seen = {(conv[0]["content"], len(conv) // 2): (conv, ref) for conv, ref in judge.rated}
    assert {key: ref for key, (_, ref) in seen.items()} == {  # every turn's so far
        ("W1", 1): None,
        ("W1", 2): None,
        ("M1", 1): ["m1"],
        ("M1", 2): ["m1", "m2"],
        ("R1", 1): ["r1"],
        ("R1", 2): ["r1", "r2"],
        ("C1", 1): None,
        ("C1", 2): None,
    }
    for q in "WMRC":
        first, _ = seen[(f"{q}1", 1)]
        second, _ = seen[(f"{q}1", 2)]
        assert [m["role"] for m in second] == ["user", "assistant", "user", "assistant"]
        assert second[:2] == first and second[2]["content"] == f"{q}2"

    m = result.metrics
    assert m["mt_bench/score"] == pytest.approx((8 + 6 + 2 + 5 + 7 + 10 + 4) / 7)
    assert m["mt_bench/turn1"] == pytest.approx((8 + 2 + 5 + 10) / 4)
    assert m["mt_bench/turn2"] == pytest.approx((6 + 7 + 4) / 3)
    assert (
        m["mt_bench/category/writing"],
        m["mt_bench/category/math"],
        m["mt_bench/category/reasoning"],
        m["mt_bench/category/coding"],
    ) == (7, 2, 6, 7)
    assert (m["mt_bench/n"], m["mt_bench/unparsed"]) == (7, 1)
    assert len(result.rows) == 8
    row = next(r for r in result.rows if r["question"] == "R2")
    assert (row["question_id"], row["turn"], row["reference"], row["rating"]) == (3, 2, "r2", 7.0)
    assert row["output"] == seen[("R1", 2)][0][3]["content"]


def test_mt_bench_as_fastchat_runs_it(tiny, tmp_path, monkeypatch):
    """FastChat's judge prompts from its file and its judge budget reach the judge; each
    category answers at its temperature, from a stream named by question and turn."""
    asked = []

    def answers(model, tok, convs, *, temperature=0.0, seeds=None, **kw):
        asked.append((temperature, [c[-1]["content"] for c in convs], seeds))
        return Answers([f"ans {len(c)}" for c in convs], [False] * len(convs))

    monkeypatch.setattr(tasks, "respond", answers)
    questions = write_jsonl(tmp_path / "q.jsonl", MT_QUESTIONS)
    judge = Rater(MT_RATINGS)
    tasks.mt_bench(
        *tiny,
        judge,
        questions,
        limit=None,
        judge_prompts=prompts_file(tmp_path),
        judge_max_new_tokens=2048,
        temperatures={"writing": 0.7, "math": 0.0},
        **GEN,
    )
    assert judge.budget == 2048
    system = {
        (conv[0]["content"], len(conv) // 2): msgs[0]["content"]
        for (conv, _), msgs in zip(judge.rated, judge.asked)
    }
    assert (system["W1", 1], system["W1", 2]) == ("SYS single-v1", "SYS single-v1-multi-turn")
    assert (system["M1", 1], system["M1", 2]) == (
        "SYS single-math-v1",
        "SYS single-math-v1-multi-turn",
    )
    turn1 = {t: qs for t, qs, _ in asked if "W1" in qs or "M1" in qs}
    assert turn1 == {0.7: ["W1"], 0.0: ["M1", "R1", "C1"]}
    seeds = {q: seed for _, qs, ss in asked for q, seed in zip(qs, ss)}
    assert len(set(seeds.values())) == 8  # one stream per question and turn


def test_sampled_answers_follow_their_seeds(tiny):
    """Answers at a temperature: the same seeds give the same answers in any batch, other
    seeds other answers, and neither is the greedy answer."""
    model, tok = tiny
    convs = [[{"role": "user", "content": q}] for q in ("Hi", "2+2?", "A story?")]
    backend = PolicyBackend(model, tok, max_new_tokens=6, batch_size=3)
    first = backend.answers(convs, 0.7, [1, 2, 3]).texts
    alone = PolicyBackend(model, tok, max_new_tokens=6, batch_size=1).answers(convs, 0.7, [1, 2, 3])
    assert alone.texts == first
    assert backend.answers(convs, 0.7, [4, 5, 6]).texts != first
    assert backend.answers(convs).texts != first


def test_mt_bench_shared_files(monkeypatch, data_dir):
    """Up to the coding question without its own `reference`, which the GPT-4 file supplies;
    the roleplay question with a `reference` field is still graded without one."""
    monkeypatch.setattr(
        tasks,
        "respond",
        lambda model, tok, convs, **kw: Answers(["ok"] * len(convs), [False] * len(convs)),
    )
    questions = [
        json.loads(line)
        for line in (data_dir / "mt_bench_questions.jsonl").read_text().splitlines()
    ]
    last = next(
        i for i, q in enumerate(questions) if q["category"] == "coding" and "reference" not in q
    )
    answers = [
        json.loads(line)
        for line in (data_dir / "mt_bench_reference_gpt4.jsonl").read_text().splitlines()
    ]
    gpt4 = next(a for a in answers if a["question_id"] == questions[last]["question_id"])
    judge = Rater({(q["turns"][0], k): 7.0 for q in questions for k in (1, 2)})
    result = tasks.mt_bench(
        None,
        None,
        judge,
        data_dir / "mt_bench_questions.jsonl",
        limit=last + 1,
        max_new_tokens=8,
        batch_size=4,
        reference_path=data_dir / "mt_bench_reference_gpt4.jsonl",
    )
    assert result.metrics["mt_bench/score"] == 7.0
    assert result.metrics["mt_bench/n"] == 2 * (last + 1) == len(result.rows)
    graded_with_reference = {"math", "reasoning", "coding"}
    for row in result.rows:
        assert (row["reference"] is not None) == (row["category"] in graded_with_reference)
    assert [r["reference"] for r in result.rows if r["question_id"] == gpt4["question_id"]] == gpt4[
        "choices"
    ][0]["turns"]


def test_mt_bench_needs_a_rating_judge(tiny):
    with pytest.raises(ValueError, match="rate"):
        tasks.mt_bench(
            *tiny, PreferOnly([]), FIXTURES / "data" / "mt_bench_questions.jsonl", limit=1, **GEN
        )


def test_signal_accuracy_by_hand():
    records = [
        {"instruction": f"q{i}", "chosen": f"good{i}", "rejected": f"bad{i}", "raw": ""}
        for i in range(4)
    ]
    judge = PreferOnly([1.0, 0.5, 0.0, None])
    result = tasks.signal_accuracy(records, judge)
    assert judge.items == [(f"q{i}", f"good{i}", f"bad{i}") for i in range(4)]
    assert result.metrics == {
        "signal/accuracy": pytest.approx(50.0),
        "signal/accuracy_se": pytest.approx(50 / math.sqrt(3)),
        "signal/n": 3,
        "signal/unparsed": 1,
    }
    assert [r["preference"] for r in result.rows] == [1.0, 0.5, 0.0, None]
    with pytest.raises(DataError, match="record 2"):
        tasks.signal_accuracy([records[0], {"instruction": "q"}], judge)


class Weighted(PreferOnly):
    """Also answers as AlpacaEval's weighted annotator, with its own scripted values."""

    def __init__(self, prefs, weighted):
        super().__init__(prefs)
        self.weighted = list(weighted)

    def prefer_weighted(self, items):
        self.items += items
        return [self.weighted.pop(0) for _ in items]


@pytest.mark.parametrize("annotator, expected", [("weighted", 80.0), ("pairwise", 25.0)])
def test_signal_accuracy_asks_the_configured_annotator(annotator, expected):
    records = [{"instruction": f"q{i}", "chosen": "y+", "rejected": "y-"} for i in range(2)]
    judge = Weighted([0.5, 0.0], [0.9, 0.7])
    result = tasks.signal_accuracy(records, judge, annotator)
    assert result.metrics["signal/accuracy"] == pytest.approx(expected)


def _hh(*turns: str) -> str:
    return "".join(
        f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns)
    )


def test_human_pairs_judges_the_chosen_answer_first(tmp_path):
    path = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {"chosen": _hh("Hi?", "Hello."), "rejected": _hh("Hi?", "Go away.")},
            {"chosen": _hh("Same", "x"), "rejected": _hh("Same", "x")},  # equal: skipped
            {
                "chosen": _hh("Name a fruit.", "Apple.", "Another?", "Pear."),
                "rejected": _hh("Name a fruit.", "Apple.", "Another?", "Rock."),
            },
            {"chosen": _hh("unread", "a"), "rejected": _hh("unread", "b")},
        ],
    )
    judge = Weighted([], [0.75, 0.25])
    result = tasks.human_pairs(judge, path, limit=2, annotator="weighted")
    assert judge.items == [
        ("Hi?", "Hello.", "Go away."),
        ("User: Name a fruit.\n\nAssistant: Apple.\n\nAnother?", "Pear.", "Rock."),
    ]
    m = result.metrics
    assert m["human_pairs/accuracy"] == pytest.approx(50.0)
    assert (m["human_pairs/n"], m["human_pairs/skipped_equal"]) == (2, 1)
    assert [r["preference"] for r in result.rows] == [0.75, 0.25]


def test_human_pairs_names_a_bad_line(tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "no transcript", "rejected": "x"}])
    with pytest.raises(DataError, match=r"hh.jsonl:1"):
        tasks.human_pairs(PreferOnly([]), path, limit=None)


def _run(task: str, path: Path, refs: Optional[Path] = None):
    judge = Rater({})
    kwargs = {"limit": None, "max_new_tokens": 4, "batch_size": 2}
    if task == "alpaca":
        return tasks.alpaca_eval(None, None, judge, path, **kwargs)
    return tasks.mt_bench(None, None, judge, path, reference_path=refs, **kwargs)


@pytest.mark.parametrize(
    "task, good, bad",
    [
        ("alpaca", {"instruction": "q", "output": "r"}, {"instruction": "q"}),
        ("mt_bench", MT_QUESTIONS[0], {"question_id": 9, "category": "math", "turns": "M1"}),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, task, good, bad):
    path = tmp_path / f"{task}.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=f"{path}:3"):
        _run(task, path)
    path.write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(DataError, match=f"{path}:2: invalid JSON"):
        _run(task, path)


def test_bad_reference_file_names_file_and_line(tmp_path):
    questions = write_jsonl(tmp_path / "q.jsonl", MT_QUESTIONS[:1])
    refs = write_jsonl(tmp_path / "ref.jsonl", [{"question_id": 1, "choices": []}])
    with pytest.raises(DataError, match=f"{refs}:1"):
        _run("mt_bench", questions, refs)
    with pytest.raises(DataError, match="file not found"):
        _run("mt_bench", questions, tmp_path / "missing.jsonl")


def test_alpaca_eval_reports_alpaca_evals_lc_given_the_difficulty_file(tiny, tmp_path):
    rows = [{"instruction": f"Question {i}?", "output": "ref " * (i + 1)} for i in range(6)]
    path = write_jsonl(tmp_path / "alpaca.jsonl", rows)
    judge = PreferOnly([1.0, 0.0, 1.0, 0.5, 0.0, 1.0])
    difficulty = _gamed_file(tmp_path, 6)
    m = tasks.alpaca_eval(*tiny, judge, path, limit=None, difficulty_file=difficulty, **GEN).metrics
    assert 0 < m["alpaca/lc_win_rate"] < 100 and "alpaca/lc_win_rate_se" in m
    assert "alpaca/lc_win_rate_approx" not in m
