"""Chat prompts to token ids: the prompt is masked from the loss, the response ends with EOS
and is cut first when too long, and earlier turns come before the query."""

from sso_exp.data.encoding import Encoded, chat_prompt, encode, fit_prompts


def test_encode_masks_prompt_and_ends_with_eos(tiny):
    _, tok = tiny
    prompt = chat_prompt(tok, None, "Hi")
    enc = encode(tok, prompt, "Hello", 512)
    assert enc.ids[: enc.n_prompt] == tok(prompt, add_special_tokens=False).input_ids
    assert enc.ids[-1] == tok.eos_token_id
    assert tok.decode(enc.ids[enc.n_prompt : -1]) == "Hello"


def test_encode_truncates_response_first():
    class Tok:
        eos_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return type("E", (), {"input_ids": [int(t) for t in text.split()]})

    enc = encode(Tok(), "1 2 3 4", "5 6 7 8 9", max_length=6)
    assert enc == Encoded([1, 2, 3, 4, 5, 6], 4)
    enc = encode(Tok(), "1 2 3 4 5 6 7", "8 9", max_length=4)
    assert enc == Encoded([5, 6, 7, 8], 3)  # prompt's start cut, one response token kept


def test_history_turns_precede_the_query(tiny):
    _, tok = tiny
    text = chat_prompt(tok, "Be kind.", "Q2", [["Q1", "A1"]])
    assert text.index("Be kind.") < text.index("Q1") < text.index("A1") < text.index("Q2")
    assert text.count("<|im_start|>system") == 1


def test_prompts_over_the_budget_are_dropped_or_cut_and_counted(tiny):
    _, tok = tiny
    prompts = ["short question?", "word " * 5000, "another one"]
    kept, counts = fit_prompts(tok, prompts, 64, "drop")
    assert kept == ["short question?", "another one"]
    assert counts == {"dropped_too_long": 1, "cut": 0}
    kept, counts = fit_prompts(tok, prompts, 64, "cut")
    assert len(kept) == 3 and counts == {"dropped_too_long": 0, "cut": 1}
    assert len(tok(kept[1], add_special_tokens=False).input_ids) <= 64
    assert kept[1].startswith("word word")
