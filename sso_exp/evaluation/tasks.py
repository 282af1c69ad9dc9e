"""Evaluation tasks that run the policy: AlpacaEval and MT-Bench (LLM-judged), GSM8K (exact
match), the accuracy of SSO's own preference signal under a judge, and that judge's own
accuracy on human-labelled pairs.

Each task returns flat metrics prefixed with its name, ready to log, and one row per item
for a per-item table, so a surprising score can be traced to the answers behind it. Answers
are decoded greedily, or (MT-Bench's creative categories) sampled from seeded streams: the
same checkpoint always gets the same score.

A judge is anything with `prefer(items)` (P(first answer better) per (instruction, a, b),
None where it could not tell) and, for MT-Bench only, `rate(items)` (1-10 per
(conversation, reference)), like `sso_exp.evaluation.judges.LLMJudge`. Unparsed judgements are
counted, never guessed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from statistics import mean
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.preferences import read_pairs
from ..data.records import read_jsonl
from ..distributed import stream_seed
from ..errors import DataError
from ..models.generate import Answers
from .fastchat import FastChatPrompts
from .judges import PolicyBackend
from .judges.llm import Message, rate_prompt
from .verifier import Verifier, agreement, verified_metrics, verify
from .winrate import alpaca_eval_lc, length_controlled_win_rate, win_rate

log = logging.getLogger(__name__)

Conversation = List[Message]

# MT-Bench grades these against a reference answer: correctness is hard to judge unaided.
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})


@dataclass
class TaskResult:
    """Flat metrics (`<task>/<name>`) and one row per evaluated item."""

    metrics: Dict[str, float] = field(default_factory=dict)
    rows: List[Dict[str, Any]] = field(default_factory=list)


# --- answering ---------------------------------------------------------------------------


def respond(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    conversations: Sequence[Conversation],
    *,
    max_new_tokens: int,
    batch_size: int,
    desc: str = "answering",
    temperature: float = 0.0,
    seeds: Optional[Sequence[int]] = None,
) -> Answers:
    """The policy's reply to each conversation, in order, and which replies the token
    budget cut short: greedy, or sampled at `temperature` from the streams `seeds` names."""
    backend = PolicyBackend(model, tok, max_new_tokens, batch_size, desc)
    return backend.answers(conversations, temperature, seeds)


def answer(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    instructions: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    desc: str = "answering",
) -> Answers:
    """The policy's greedy answer to each single user message, without a system prompt."""
    return respond(
        model,
        tok,
        [[{"role": "user", "content": x}] for x in instructions],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        desc=desc,
    )


# --- input ---------------------------------------------------------------------------------


def _rows(path: str | Path, limit: Optional[int]) -> List[Tuple[int, dict]]:
    """The first `limit` rows (all when None) with their line numbers; the rest is not read."""
    return list(islice(read_jsonl(path), limit))


def _text(path: str | Path, lineno: int, obj: dict, key: str, allow_empty: bool = False) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        raise DataError(f"{path}:{lineno}: needs a non-empty text field {key!r}")
    return value


def _texts(path: str | Path, lineno: int, obj: dict, key: str) -> List[str]:
    value = obj.get(key)
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise DataError(f"{path}:{lineno}: needs {key!r}, a non-empty list of texts")
    return value


# --- metrics -------------------------------------------------------------------------------


def _rate_metrics(task: str, name: str, prefs: Sequence[Optional[float]]) -> Dict[str, float]:
    """n, unparsed, and the mean preference in percent with its SE (only if any parsed)."""
    known = [p for p in prefs if p is not None]
    metrics = {f"{task}/n": float(len(known)), f"{task}/unparsed": float(len(prefs) - len(known))}
    if known:
        metrics[f"{task}/{name}"], metrics[f"{task}/{name}_se"] = win_rate(known)
    return metrics


def _means(task: str, groups: Dict[str, List[Optional[float]]]) -> Dict[str, float]:
    """`<task>/<group>`: the mean of each group's parsed values; groups with none are left out."""
    out = {}
    for group, values in groups.items():
        known = [v for v in values if v is not None]
        if known:
            out[f"{task}/{group}"] = mean(known)
    return out


def preferences(
    judge: Any, items: Sequence[Tuple[str, str, str]], annotator: str
) -> List[Optional[float]]:
    """P(first answer better) per (instruction, a, b): AlpacaEval 2.0's weighted annotator
    where the judge offers it and `annotator` asks for it, else the judge's `prefer` (a
    reward model compares scores either way)."""
    if not items:
        return []
    weighted = annotator == "weighted" and hasattr(judge, "prefer_weighted")
    return judge.prefer_weighted(items) if weighted else judge.prefer(items)


# --- tasks ---------------------------------------------------------------------------------


def alpaca_eval(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    judge: Any,
    path: str | Path,
    *,
    limit: Optional[int],
    max_new_tokens: int,
    batch_size: int,
    difficulty_file: Optional[str | Path] = None,
    annotator: str = "weighted",
) -> TaskResult:
    """Win rate and length-controlled win rate (lengths in characters) against the file's
    reference `output`s, AlpacaEval's 805 in its order; the LC rate is AlpacaEval's own given
    its `difficulty_file`, else the approximation `lc_win_rate_approx`. An LLM judge annotates
    as AlpacaEval 2.0's weighted annotator unless `annotator` is pairwise. Rows with an
    empty reference are skipped: there is nothing to beat."""
    items, skipped = [], 0
    for lineno, obj in _rows(path, limit):
        instruction = _text(path, lineno, obj, "instruction")
        reference = _text(path, lineno, obj, "output", allow_empty=True)
        if reference.strip():
            items.append((instruction, reference, lineno - 1))
        else:
            skipped += 1
    outputs, cut = answer(
        model,
        tok,
        [q for q, _, _ in items],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        desc="alpaca_eval",
    )
    prefs = preferences(
        judge, [(q, out, ref) for (q, ref, _), out in zip(items, outputs)], annotator
    )
    metrics = {
        **_rate_metrics("alpaca", "win_rate", prefs),
        "alpaca/skipped": float(skipped),
        "alpaca/budget_hits": float(sum(cut)),
    }
    if outputs:
        metrics["alpaca/mean_length"] = mean(len(o) for o in outputs)
    judged = [(p, o, ref, i) for p, o, (_, ref, i) in zip(prefs, outputs, items) if p is not None]
    if judged:
        metrics.update(_lc_metrics(judged, difficulty_file))
    rows = [
        {"instruction": q, "output": o, "cut": c, "reference": ref, "preference": p}
        for (q, ref, _), o, c, p in zip(items, outputs, cut, prefs)
    ]
    return TaskResult(metrics, rows)


def _lc_metrics(
    judged: Sequence[Tuple[float, str, str, int]], difficulty_file: Optional[str | Path]
) -> Dict[str, float]:
    """AlpacaEval's LC win rate and its SE, or, without its instruction difficulties, the
    clearly named approximation (docs/algorithm.md §7)."""
    prefs, outputs, references, indexes = zip(*judged)
    if difficulty_file:
        lc, se = alpaca_eval_lc(prefs, outputs, references, indexes, difficulty_file)
        return {"alpaca/lc_win_rate": lc, "alpaca/lc_win_rate_se": se}
    log.warning(
        "eval.alpaca.difficulty_file is unset: reporting alpaca/lc_win_rate_approx, a "
        "length-controlled win rate without AlpacaEval's instruction-difficulty term"
    )
    lc, se = length_controlled_win_rate(prefs, list(map(len, outputs)), list(map(len, references)))
    return {"alpaca/lc_win_rate_approx": lc, "alpaca/lc_win_rate_approx_se": se}


def _reference_answers(path: Optional[str | Path]) -> Dict[Any, List[str]]:
    """question_id -> reference turns from a FastChat answer file (`choices[0].turns`)."""
    refs: Dict[Any, List[str]] = {}
    if path is None:
        return refs
    for lineno, obj in read_jsonl(path):
        choices = obj.get("choices")
        if "question_id" not in obj or not (
            isinstance(choices, list) and choices and isinstance(choices[0], dict)
        ):
            raise DataError(f"{path}:{lineno}: needs 'question_id' and 'choices[0].turns'")
        refs[obj["question_id"]] = _texts(path, lineno, choices[0], "turns")
    return refs


def _mt_questions(
    path: str | Path, limit: Optional[int], reference_path: Optional[str | Path]
) -> List[Dict[str, Any]]:
    """Questions with the reference turns their category is graded against (None if not)."""
    answers = _reference_answers(reference_path)
    questions = []
    for lineno, obj in _rows(path, limit):
        if "question_id" not in obj:
            raise DataError(f"{path}:{lineno}: needs 'question_id'")
        q = {
            "question_id": obj["question_id"],
            "category": _text(path, lineno, obj, "category"),
            "turns": _texts(path, lineno, obj, "turns"),
            "reference": None,
        }
        if q["category"] in REFERENCE_CATEGORIES:
            q["reference"] = (
                _texts(path, lineno, obj, "reference")
                if "reference" in obj
                else answers.get(q["question_id"])
            )
            if q["reference"] is None:
                log.warning(
                    "%s:%d: no reference answer for %s question %s; graded without",
                    path,
                    lineno,
                    q["category"],
                    q["question_id"],
                )
        questions.append(q)
    return questions


def mt_bench(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    judge: Any,
    path: str | Path,
    *,
    limit: Optional[int],
    max_new_tokens: int,
    batch_size: int,
    reference_path: Optional[str | Path] = None,
    judge_prompts: Optional[str | Path] = None,
    judge_max_new_tokens: Optional[int] = None,
    temperatures: Optional[Mapping[str, float]] = None,
) -> TaskResult:
    """MT-Bench single-answer grading as FastChat runs it: each turn answered with the
    conversation so far, at its category's temperature (`temperatures`; greedy where 0 or
    not named, sampled from a stream named by question and turn otherwise), and rated 1-10
    with at most `judge_max_new_tokens`; `mt_bench/n` counts rated turns. Reference answers
    (the question's `reference`, else `reference_path`'s) are shown to the judge for math,
    reasoning and coding only, every turn's so far. The judge prompts are FastChat's, read
    from `judge_prompts`, or ours."""
    if not callable(getattr(judge, "rate", None)):
        raise ValueError(
            f"mt_bench needs a judge that can rate single answers (1-10); "
            f"{type(judge).__name__} has no rate()"
        )
    prompt = FastChatPrompts(judge_prompts) if judge_prompts else rate_prompt
    questions = _mt_questions(path, limit, reference_path)
    histories: List[Conversation] = [[] for _ in questions]
    turns: List[Tuple[int, int]] = []  # (question index, turn index) per graded answer
    cut: Dict[Tuple[int, int], bool] = {}  # the answers the token budget cut short
    for k in range(max((len(q["turns"]) for q in questions), default=0)):
        asked = [i for i, q in enumerate(questions) if k < len(q["turns"])]
        for heat, group in _by_temperature(asked, questions, temperatures or {}).items():
            convs = [
                histories[i] + [{"role": "user", "content": questions[i]["turns"][k]}]
                for i in group
            ]
            replies, turn_cut = respond(
                model,
                tok,
                convs,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                desc=f"mt_bench turn {k + 1}",
                temperature=heat,
                seeds=[stream_seed("mt_bench", questions[i]["question_id"], k) for i in group],
            )
            for i, conv, reply, hit in zip(group, convs, replies, turn_cut):
                histories[i] = conv + [{"role": "assistant", "content": reply}]
                turns.append((i, k))
                cut[i, k] = hit

    def references(i: int, k: int) -> Optional[List[str]]:
        ref = questions[i]["reference"]
        return list(ref[: k + 1]) if ref is not None and k < len(ref) else None

    def reference(i: int, k: int) -> Optional[str]:
        refs = references(i, k)
        return refs[k] if refs else None

    items = [(histories[i][: 2 * k + 2], references(i, k)) for i, k in turns]
    ratings = judge.rate(items, prompt, judge_max_new_tokens) if turns else []
    groups: Dict[str, List[Optional[float]]] = {"score": list(ratings)}
    rows = []
    for (i, k), rating in zip(turns, ratings):
        q = questions[i]
        groups.setdefault(f"turn{k + 1}", []).append(rating)
        groups.setdefault(f"category/{q['category']}", []).append(rating)
        rows.append(
            {
                "question_id": q["question_id"],
                "category": q["category"],
                "turn": k + 1,
                "question": q["turns"][k],
                "output": histories[i][2 * k + 1]["content"],
                "cut": cut[i, k],
                "reference": reference(i, k),
                "rating": rating,
            }
        )
    rated = sum(r is not None for r in ratings)
    metrics = {
        **_means("mt_bench", groups),
        "mt_bench/n": float(rated),
        "mt_bench/unparsed": float(len(ratings) - rated),
        "mt_bench/budget_hits": float(sum(cut.values())),
    }
    return TaskResult(metrics, rows)


def _by_temperature(
    asked: Sequence[int], questions: Sequence[Dict[str, Any]], temperatures: Mapping[str, float]
) -> Dict[float, List[int]]:
    """The asked questions grouped by their category's answer temperature (0: greedy)."""
    groups: Dict[float, List[int]] = {}
    for i in asked:
        groups.setdefault(float(temperatures.get(questions[i]["category"], 0.0)), []).append(i)
    return groups


def signal_accuracy(
    records: Sequence[Dict[str, Any]], judge: Any, annotator: str = "weighted"
) -> TaskResult:
    """How often the judge agrees with SSO's own label, preferring y+ (`chosen`) over y-
    (`rejected`): the mean preference in percent, a tie counting half. Pairs written under
    verifiable principles are also judged by the checker (evaluation/verifier.py), and the
    judge's agreement with it reported; the verifier judge alone asks no model."""
    for n, rec in enumerate(records, 1):
        missing = [
            k for k in ("instruction", "chosen", "rejected") if not isinstance(rec.get(k), str)
        ]
        if missing:
            raise DataError(f"record {n}: lacks the text fields {missing}")
    verified = isinstance(judge, Verifier) or any("constraints" in r for r in records)
    rows = verify(records) if verified else []
    if isinstance(judge, Verifier):
        return TaskResult(verified_metrics(rows), rows)
    items = [(r["instruction"], r["chosen"], r["rejected"]) for r in records]
    result = _agreement("signal", items, judge, annotator)
    if verified:
        prefs = [row["preference"] for row in result.rows]
        result.metrics.update({**verified_metrics(rows), **agreement(prefs, rows)})
        result.rows = [{**row, "preference": p} for row, p in zip(rows, prefs)]
    return result


def human_pairs(
    judge: Any, path: str | Path, *, limit: Optional[int], annotator: str = "weighted"
) -> TaskResult:
    """The judge's accuracy on human-labelled pairs, asked as signal accuracy asks it. An
    earlier conversation is shown to the judge as a transcript before the last request."""
    pairs, equal = read_pairs(path, limit)
    items = [(as_instruction(p.prompt), p.chosen, p.rejected) for p in pairs]
    result = _agreement("human_pairs", items, judge, annotator)
    result.metrics["human_pairs/skipped_equal"] = float(equal)
    return result


def as_instruction(prompt: Conversation) -> str:
    """One request for the judge: the last user turn, after the turns before it."""
    *before, last = prompt
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in before]
    return "\n\n".join([*lines, last["content"]]) if lines else last["content"]


def _agreement(
    task: str, items: Sequence[Tuple[str, str, str]], judge: Any, annotator: str
) -> TaskResult:
    """The judge's mean preference for the labelled answer (the first of each item)."""
    prefs = preferences(judge, items, annotator)
    rows = [
        {"instruction": q, "chosen": c, "rejected": r, "preference": p}
        for (q, c, r), p in zip(items, prefs)
    ]
    return TaskResult(_rate_metrics(task, "accuracy", prefs), rows)
