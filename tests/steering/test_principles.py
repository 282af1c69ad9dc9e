"""Feature identification parsing and the p+/p- system prompts."""

import random

import pytest

from sso_exp.steering.principles import (
    add_concision,
    identify_prompt,
    join_words,
    parse_features,
    parse_principles,
    principle_prompt,
    steer,
)


@pytest.fixture
def pc(tmp_path):
    from conftest import compose_cfg

    return compose_cfg(tmp_path).principle


def test_prompt_lists_seven_features_and_examples(pc):
    text = identify_prompt(pc, "How do I boil an egg?")
    assert text.count("\n- ") == 7 and "Concision" not in text
    assert text.endswith("Query: How do I boil an egg?\nFeatures:")
    assert all(ex.query in text for ex in pc.identify_examples)


def test_parse_keeps_valid_names_and_fills_up(pc):
    rng = random.Random(0)
    assert sorted(parse_features("Accuracy, logicality, Nonsense", pc, rng)) == [
        "Accuracy",
        "Logicality",
    ]
    got = parse_features("Safety, Banana", pc, rng)
    assert "Safety" in got and len(set(got)) == 2 and "Concision" not in got
    assert len(parse_features("", pc, rng)) == 2
    assert len(parse_features("Safety, Accuracy, Engagement, Helpfulness", pc, rng)) == 2


def test_steer_builds_mirrored_prompts(pc):
    st = steer(["Safety", "Accuracy"], pc)
    assert st.p_system.startswith("Your response should be Safe and Accurate.")
    assert st.n_system.startswith("Your response should be Unsafe and Inaccurate.")
    good = {f.name: f for f in pc.features}
    assert f"Safety: {good['Safety'].good_principle}" in st.p_system
    assert f"Accuracy: {good['Accuracy'].bad_principle}" in st.n_system
    assert st.p_system.endswith(pc.secrecy) and st.n_system.endswith(pc.secrecy)


def test_concision_added_with_its_probability(pc):
    rng = random.Random(1)
    added = sum("Concision" in add_concision(["Safety"], pc, rng) for _ in range(2000))
    assert 0.16 < added / 2000 < 0.24
    pc.concision_prob = 1.0
    st = steer(add_concision(["Safety", "Accuracy"], pc, rng), pc)
    assert st.features[-1] == "Concision" and "Safe, Accurate and Concise" in st.p_system


def test_join_words():
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c"]) == "a, b and c"


def test_written_principles_replace_the_predefined_ones(pc):
    st = steer(["Safety", "Accuracy"], pc, {"Accuracy": ("Check every date.", "Guess the dates.")})
    assert (
        "Accuracy: Check every date." in st.p_system and "Accuracy: Guess the dates." in st.n_system
    )
    assert f"Safety: {pc.features[0].good_principle}" in st.p_system


def test_parse_principles():
    assert parse_principles('Sure! {"good_principle": "G", "bad_principle": "B"} done') == (
        "G",
        "B",
    )
    assert parse_principles('{"x": 1} then {"good_principle": "G", "bad_principle": "B"}') == (
        "G",
        "B",
    )
    assert parse_principles('{"good_principle": "G"}') is None
    assert parse_principles('{"good_principle": "G", "bad_principle": ""}') is None
    assert parse_principles("no json {here") is None


def test_principle_prompt_is_few_shot_json(tmp_path):
    from conftest import compose_cfg

    pc = compose_cfg(tmp_path, "principle=generated").principle
    text = principle_prompt(pc, "How do I fix a flat tyre?", "Helpfulness")
    assert text.count('"good_principle"') == len(pc.generate_examples) >= 2
    assert text.endswith("Query: How do I fix a flat tyre?\nFeature: Helpfulness\nAnswer:")
