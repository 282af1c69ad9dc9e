"""Verifiable principles: every family of principle=verifiable judged by IFEval's own checker
(called here directly, as lm-evaluation-harness ships it), its good and bad sides exclusive
on hand-written answers, its arguments drawn from the query's stream alone, and bad
families refused at start-up naming the key."""

import random

import pytest
from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

from conftest import compose_cfg
from sso_exp.errors import ConfigError
from sso_exp.steering.rounds import build_round
from sso_exp.steering.verifiable import check_families, draw_constraints, holds

# per family: (an answer that satisfies the good constraint, one that satisfies the bad one),
# formatted with the drawn arguments
ANSWERS = {
    "Case": ("here is a short answer in plain lowercase english words.",
             "HERE IS A SHORT ANSWER IN LOUD CAPITAL ENGLISH WORDS."),
    "Length": ("{few}", "{many}"),
    "Commas": ("Rivers flow to the sea and rain refills them.",
               "Rivers, lakes, and seas hold water, and rain refills them."),
    "Quotation": ('"Rivers flow to the sea."', "Rivers flow to the sea."),
    "Ending": ("Rivers flow to the sea. {phrase}", "Rivers flow to the sea. That is all."),
    "Keywords": ("The {w0} and the {w1} are near.", "Nothing to say about that."),
    "Postscript": ("Rivers flow to the sea.\n\nP.S. Rain refills them.",
                   "Rivers flow to the sea. Rain refills them."),
    "Sentences": ("{short}", "{long}"),
    "Bullets": ("{bullets}", "Rivers flow to the sea. Rain refills them."),
    "Title": ("<<Rivers>>\nRivers flow to the sea.", "Rivers flow to the sea."),
}  # fmt: skip


def library_verdict(spec, text):
    """IFEval's checker, straight from lm-evaluation-harness's registry."""
    inst = INSTRUCTION_DICT[spec["id"]](spec["id"])
    inst.build_description(**spec["kwargs"])
    return inst.check_following(text) != spec["negate"]


def fill(template, spec):
    kw = spec["kwargs"]
    words, sentences = kw.get("num_words", 10), kw.get("num_sentences", 2)
    return template.format(
        few=" ".join(["word"] * (words - 1)),
        many=" ".join(["word"] * words),
        short=" ".join(["Rivers flow."] * (sentences - 1)),
        long=" ".join(["Rivers flow."] * sentences),
        bullets="\n".join(f"* point {i}" for i in range(kw.get("num_bullets", 0))),
        phrase=kw.get("end_phrase", ""),
        w0=(kw.get("keywords") or ["", ""])[0],
        w1=(kw.get("keywords") or ["", ""])[-1],
    )


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """Each family of principle=verifiable_formats (all of them), drawn once (family name ->
    its constraint)."""
    cfg = compose_cfg(tmp_path_factory.mktemp("v"), "principle=verifiable_formats")
    drawn = {}
    rng = random.Random(0)
    while len(drawn) < len(cfg.principle.verifiable):
        (c,) = draw_constraints(cfg.principle, rng)
        drawn.setdefault(c["family"], c)
    return drawn


def test_every_family_has_hand_written_answers(families):
    assert set(families) == set(ANSWERS)


@pytest.mark.parametrize("family", sorted(ANSWERS))
def test_the_verifier_is_the_library_checker_and_the_sides_exclude(families, family):
    c = families[family]
    good_text, bad_text = (fill(t, c["good"]) for t in ANSWERS[family])
    for text, satisfies in ((good_text, "good"), (bad_text, "bad")):
        for side in ("good", "bad"):
            ours = holds(c[side], text)
            assert ours == library_verdict(c[side], text)
            assert ours == (side == satisfies), (family, side, text)


def test_the_principles_are_the_checkers_description_or_the_options_text(families):
    c = families["Length"]
    assert c["good_principle"] == f"Answer with less than {c['good']['kwargs']['num_words']} words."
    assert "Do not finish your response with the phrase" in families["Ending"]["bad_principle"]


class NoSampler:
    """Verifiable principles ask the writer nothing before y+, y-, y0."""

    def sample(self, chats, max_new_tokens, desc, seeds):
        assert desc == "y+/y-/y0"
        return [f"answer {i} of the writer" for i in range(len(chats))]


def test_a_querys_constraints_depend_on_the_seed_round_and_index_only(tmp_path):
    cfg = compose_cfg(tmp_path, "principle=verifiable")
    queries = [f"question {i}" for i in range(8)]

    def constraints(qs, key=(42, 1, "")):
        rnd = build_round(NoSampler(), qs, cfg.principle, cfg.filter, 9, key)
        return [r["constraints"] for r in rnd.generated]

    whole = constraints(queries)
    assert constraints(queries[:3]) == whole[:3]  # another round size, another batch
    assert constraints([q + "?" for q in queries]) == whole  # not the query's text
    assert constraints(queries, (42, 2, "")) != whole  # another iteration draws anew
    assert len({c[0]["family"] for c in whole}) > 1


def test_the_records_keep_the_authors_fields_and_add_the_constraints(tmp_path):
    cfg = compose_cfg(tmp_path, "principle=verifiable")
    (rec,) = build_round(NoSampler(), ["q"], cfg.principle, cfg.filter, 9, (1, 1, "")).generated
    assert list(rec)[:9] == [
        "instruction", "idx", "history", "p_system", "n_system", "system", "chosen",
        "rejected", "raw",
    ]  # fmt: skip
    (c,) = rec["constraints"]
    assert c["good_principle"] in rec["p_system"] and c["bad_principle"] in rec["n_system"]
    assert rec["p_system"].startswith("Your response should be")


BAD_FAMILIES = [  # principle=verifiable_formats: 0 Length, 2 Commas, 6 Keywords
    ("principle.verifiable.0.good_constraint.id=change_case:shouting", "is not an IFEval"),
    ("principle.verifiable.0.draw.words.low=0", "needs 1 <= low <= high"),
    ("principle.verifiable.0.good_constraint.kwargs.relation=about", "relation"),
    ("~principle.verifiable.0.good_constraint.kwargs.relation", "takes the arguments"),
    ("principle.verifiable.2.bad_constraint.text=null", "needs its text"),
    ("principle.verifiable.6.draw.words.sample=20", "needs 1 <= sample"),
]


@pytest.mark.parametrize("override,message", BAD_FAMILIES)
def test_a_bad_family_is_refused_naming_its_key(tmp_path, override, message):
    cfg = compose_cfg(tmp_path, "principle=verifiable_formats", override)
    with pytest.raises(ConfigError, match=message) as err:
        check_families(cfg.principle)
    assert "principle.verifiable[" in str(err.value)
