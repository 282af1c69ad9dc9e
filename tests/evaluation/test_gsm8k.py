"""GSM8K answer extraction and exact match, on the shared test rows and on hand-written cases."""

import json

import pytest

from sso_exp.evaluation.gsm8k import exact_match, gsm8k_prompt, predicted_answer, reference_answer


@pytest.fixture(scope="module")
def rows(data_dir):
    path = data_dir / "gsm8k_test_1k.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# the "#### N" of the first 20 rows, read off the file by eye
FIRST_20 = [
    "18",
    "3",
    "70000",
    "540",
    "20",
    "64",
    "260",
    "160",
    "45",
    "460",
    "366",
    "694",
    "13",
    "18",
    "60",
    "125",
    "230",
    "57500",
    "7",
    "6",
]


def test_reference_answers_of_the_first_rows(rows):
    assert [reference_answer(row["answer"]) for row in rows[:20]] == FIRST_20


def test_reference_solutions_score_as_correct_completions(rows):
    assert len(rows) == 1000
    for row in rows:
        assert predicted_answer(row["answer"]) == reference_answer(row["answer"]), row["answer"]
        assert exact_match(predicted_answer(row["answer"]), reference_answer(row["answer"]))


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("so 2,125 in all\n#### 2,125", "2125"),
        ("#### -10", "-10"),
        ("#### +7", "7"),
        ("#### 12.00", "12"),
        ("#### 3.50", "3.5"),
    ],
)
def test_reference_answer_normalises(answer, expected):
    assert reference_answer(answer) == expected


def test_reference_answer_without_marker_raises():
    with pytest.raises(ValueError):
        reference_answer("The answer is 5.")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She pays $1,234.50 in total.", "1234.5"),
        ("The temperature fell to -15 degrees.", "-15"),
        ("It costs -$5, or $-5.", "-5"),
        ("Each is 0.25 kg, so 2.0 kg.", "2"),
        ("Sales grew by 10%.", "10"),
        ("The answer is 42.", "42"),
        ("So the final answer is: **1,000**", "1000"),
        ("Answer: 7 apples, since 3 + 4 = 7 and 2 were eaten earlier", "7"),
        ("The answer is 20.\nWait, recount.\n#### 18", "18"),
        ("First 3 apples, then 5 more, so 8 in total.", "8"),
        ("16-3-4=9 eggs", "9"),
        ("between 3-4 hours", "4"),
        ("####\nI am not sure, maybe 12", "12"),
        ("I cannot solve this.", None),
        ("", None),
    ],
)
def test_predicted_answer(text, expected):
    assert predicted_answer(text) == expected


@pytest.mark.parametrize(
    "prediction, reference, expected",
    [
        ("18", "18", True),
        ("18.0", "18", True),
        ("12.50", "12.5", True),
        ("1,000", "1000", True),
        ("-10", "10", False),
        ("17", "18", False),
        (None, "18", False),
    ],
)
def test_exact_match(prediction, reference, expected):
    assert exact_match(prediction, reference) is expected


def test_prompt_asks_for_steps_and_final_marker():
    prompt = gsm8k_prompt("  How many eggs?  ")
    assert "step by step" in prompt and '"#### <number>"' in prompt
    assert prompt.endswith("How many eggs?")
