"""FastChat-format judge prompts: the four single-answer prompts picked by turn and by
whether references are given, filled with FastChat's field names; a file without them,
or a template asking for a field FastChat does not fill, is refused naming the file."""

import json

import pytest

from sso_exp.errors import DataError
from sso_exp.evaluation.fastchat import NAMES, FastChatPrompts

# a prompts file in FastChat's schema, with texts of this test's own
TEMPLATES = {
    "single-v1": "Q={question} A={answer}",
    "single-math-v1": "Q={question} REF={ref_answer_1} A={answer}",
    "single-v1-multi-turn": "Q1={question_1} A1={answer_1} Q2={question_2} A2={answer_2}",
    "single-math-v1-multi-turn": (
        "Q1={question_1} R1={ref_answer_1} A1={answer_1} "
        "Q2={question_2} R2={ref_answer_2} A2={answer_2}"
    ),
}


def prompts_file(tmp_path, templates=TEMPLATES):
    rows = [{"name": "pair-v2", "type": "pairwise", "system_prompt": "x", "prompt_template": "y"}]
    rows += [
        {"name": n, "type": "single", "system_prompt": f"SYS {n}", "prompt_template": t}
        for n, t in templates.items()
    ]
    path = tmp_path / "judge_prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ONE = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
TWO = [*ONE, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]


@pytest.mark.parametrize(
    "conversation, references, name, text",
    [
        (ONE, None, "single-v1", "Q=q1 A=a1"),
        (ONE, ["r1"], "single-math-v1", "Q=q1 REF=r1 A=a1"),
        (TWO, None, "single-v1-multi-turn", "Q1=q1 A1=a1 Q2=q2 A2=a2"),
        (TWO, ["r1", "r2"], "single-math-v1-multi-turn", "Q1=q1 R1=r1 A1=a1 Q2=q2 R2=r2 A2=a2"),
    ],
)
def test_the_prompt_for_the_turn_and_reference(tmp_path, conversation, references, name, text):
    messages = FastChatPrompts(prompts_file(tmp_path))(conversation, references)
    assert messages == [
        {"role": "system", "content": f"SYS {name}"},
        {"role": "user", "content": text},
    ]


def test_a_file_without_the_single_answer_prompts_is_refused(tmp_path):
    path = prompts_file(tmp_path, {n: t for n, t in TEMPLATES.items() if n != NAMES[2]})
    with pytest.raises(DataError, match=f"{path}: no judge prompt named {NAMES[2]}"):
        FastChatPrompts(path)


def test_a_template_asking_for_an_unknown_field_is_refused(tmp_path):
    path = prompts_file(tmp_path, {**TEMPLATES, "single-v1": "Q={question} {rating}"})
    with pytest.raises(DataError, match="single-v1's template asks for 'rating'"):
        FastChatPrompts(path)(ONE, None)
