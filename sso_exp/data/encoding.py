"""Text to token ids: chat prompts in the model's own template, prompt + response pairs
with the response marked for the loss, and the named sequences of an SSO record
(docs/algorithm.md §4: the main, p and n pairs). Batches of them: data/packing.py."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from transformers import PreTrainedTokenizerBase

from .preferences import Messages, PrefPair

# sequence name -> (system prompt field, or None for the plain query; response field)
SEQUENCES = {
    "main_chosen": (None, "chosen"),
    "main_rejected": (None, "rejected"),  # x: y+ > y-
    "p_chosen": ("p_system", "chosen"),
    "p_rejected": ("p_system", "rejected"),  # p+: y+ > y-
    "n_chosen": ("n_system", "raw"),
    "n_rejected": ("n_system", "chosen"),  # p-: y0 > y+
    "raw": (None, "raw"),  # y0 under x: on-policyness only
    "pminus_yminus": ("n_system", "rejected"),  # y- under p-: the log-prob filter only
}
ON_POLICY = ("main_chosen", "main_rejected", "raw")


class Encoded(NamedTuple):
    """One prompt + response as token ids; the first `n_prompt` are the prompt."""

    ids: List[int]
    n_prompt: int


def chat_prompt(
    tok: PreTrainedTokenizerBase,
    system: Optional[str],
    user: str,
    history: Sequence[Sequence[str]] = (),
) -> str:
    """The model's own chat template; no system message when `system` is empty; `history`
    holds earlier [user, assistant] turns, as in the authors' records."""
    messages = [{"role": "system", "content": system}] if system else []
    for u, a in history:
        messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": user})
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def fit_prompts(
    tok: PreTrainedTokenizerBase, prompts: Sequence[str], max_tokens: int, action: str
) -> Tuple[List[str], Dict[str, int]]:
    """The queries within `max_tokens` tokens, a longer one dropped or cut to its first
    `max_tokens` (`action`), and how many of each: one huge query would otherwise cost
    memory quadratic in its length in every stage that batches it."""
    kept: List[str] = []
    counts = {"dropped_too_long": 0, "cut": 0}
    for text in prompts:
        ids = tok(text, add_special_tokens=False).input_ids
        if len(ids) <= max_tokens:
            kept.append(text)
        elif action == "cut":
            kept.append(tok.decode(ids[:max_tokens]))
            counts["cut"] += 1
        else:
            counts["dropped_too_long"] += 1
    return kept, counts


def encode(tok: PreTrainedTokenizerBase, prompt: str, response: str, max_length: int) -> Encoded:
    """Prompt and response tokenized apart (no merge across the boundary), response ended
    with EOS; over `max_length` the response is cut first, then the prompt's start."""
    p = tok(prompt, add_special_tokens=False).input_ids
    r = tok(response, add_special_tokens=False).input_ids + [tok.eos_token_id]
    r = r[: max(1, max_length - len(p))]
    p = p[max(0, len(p) + len(r) - max_length) :]
    return Encoded(p + r, len(p))


def pair_names(use_g: bool) -> List[str]:
    """The pairs the loss needs: the G term adds p and n to main."""
    return ["main", "p", "n"] if use_g else ["main"]


def sequence_names(pairs: Sequence[str]) -> List[str]:
    return [f"{p}_{side}" for p in pairs for side in ("chosen", "rejected")]


def encode_records(
    tok: PreTrainedTokenizerBase, records: Sequence[Dict], names: Sequence[str], max_length: int
) -> Dict[str, List[Encoded]]:
    """The named sequences of every record, as token ids."""
    out: Dict[str, List[Encoded]] = {n: [] for n in names}
    for rec in records:
        prompts: Dict[Optional[str], str] = {}
        for name in names:
            system, response = SEQUENCES[name]
            if system not in prompts:
                prompts[system] = chat_prompt(
                    tok,
                    rec[system] if system else None,
                    rec["instruction"],
                    rec.get("history") or (),
                )
            out[name].append(encode(tok, prompts[system], rec[response], max_length))
    return out


def encode_conversation(
    tok: PreTrainedTokenizerBase, messages: Messages, max_length: int
) -> Encoded:
    """A whole chat-formatted conversation (for a reward model); over `max_length` its start
    is cut (the answer being judged is at the end)."""
    ids = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False).input_ids
    return Encoded(ids[-max_length:], 0)


def encode_answer(
    tok: PreTrainedTokenizerBase, prompt: str, answer: str, max_length: int
) -> Encoded:
    """A one-turn conversation: the user's prompt and the answer to score."""
    return encode_conversation(
        tok,
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        max_length,
    )


def encode_pair(
    tok: PreTrainedTokenizerBase, pair: PrefPair, max_length: int
) -> Dict[str, Encoded]:
    """The conversation ended by each answer of a preference pair."""

    def conv(answer: str) -> Encoded:
        return encode_conversation(
            tok, pair.prompt + [{"role": "assistant", "content": answer}], max_length
        )

    return {"chosen": conv(pair.chosen), "rejected": conv(pair.rejected)}
