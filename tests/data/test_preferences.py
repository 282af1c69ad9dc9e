"""Human preference files and SSO records as reward-model pairs."""

import json
from functools import partial

import pytest

from sso_exp.data.preferences import from_records, parse_transcript, read_pairs
from sso_exp.data.records import make_record
from sso_exp.errors import DataError


def test_parse_transcript():
    msgs = parse_transcript(
        "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant: Ciao"
    )
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[1]["content"] == "Hello!" and msgs[3]["content"] == "Ciao"


def test_hh_file_reads_and_skips_equal_pairs(data_dir):
    pairs, skipped = read_pairs(data_dir / "hh_helpful_test.jsonl")
    # the data README: 2,354 rows, 2 with chosen == rejected
    assert len(pairs) + skipped == 2354 and skipped == 2
    assert pairs[0].prompt[0]["content"].startswith("Do you know why turkeys")
    assert pairs[0].chosen.startswith("To be honest") and pairs[0].prompt[-1]["role"] == "user"


def test_subsets_are_kept(data_dir):
    pairs, _ = read_pairs(data_dir / "hh_helpful_online_rs_test.jsonl", limit=5)
    assert len(pairs) == 5 and pairs[0].subset != "all"


def test_prompt_chosen_rejected_rows(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(
        '{"prompt": "q", "chosen": "a", "rejected": "b"}\n'
        '{"prompt": "q", "chosen": "a", "rejected": "a"}\n{"chosen": "x"}\n'
    )
    with pytest.raises(DataError, match="p.jsonl:3: not a preference pair"):
        read_pairs(f)
    pairs, skipped = read_pairs(f, limit=1)
    assert [(p.prompt[0]["content"], p.chosen, p.rejected) for p in pairs] == [("q", "a", "b")]


def test_sso_records_become_pairs():
    recs = [
        make_record("q", "p", "n", "good", "bad", "raw"),
        make_record("q", "p", "n", "s", "s", "r"),
    ]
    pairs, skipped = from_records(recs)
    assert skipped == 1 and pairs[0].chosen == "good" and pairs[0].subset == "sso"


def test_human_pairs_become_records_with_history(tmp_path, data_dir):
    from sso_exp.data.preferences import read_training_pairs

    recs = read_training_pairs(data_dir / "hh_helpful_online_rs_test.jsonl")
    # 34 with chosen == rejected and 3 with an empty answer are skipped
    assert len(recs) == 3886 - 34 - 3 and all(r["p_system"] == "" for r in recs)
    multi = next(r for r in recs if r["history"])
    assert all(len(turn) == 2 for turn in multi["history"])
    assert read_training_pairs(data_dir / "sso_example.json")[0]["p_system"]


def pair_row(kind, chosen, rejected):
    """A pair as an SSO record or as a prompt/chosen/rejected row."""
    if kind == "records":
        return make_record("q", "be good", "be bad", chosen, rejected, "y0")
    return {"prompt": "q", "chosen": chosen, "rejected": rejected}


@pytest.mark.parametrize("kind", ["records", "human"])
def test_pairs_with_equal_answers_are_dropped_counted_or_refused(tmp_path, kind):
    from sso_exp.data.preferences import read_training_pairs

    row = partial(pair_row, kind)
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [row("a", "a"), row("a", "b")]))
    assert [r["chosen"] for r in read_training_pairs(f)] == ["a"]
    with pytest.raises(DataError, match="pairs.jsonl: 1 of 2 pairs have chosen == rejected"):
        read_training_pairs(f, "refuse")
    f.write_text(json.dumps(row("same", "same")) + "\n")
    with pytest.raises(DataError, match="1 of 1 pairs .* nothing is left to train on"):
        read_training_pairs(f)


@pytest.mark.parametrize("kind", ["records", "human"])
def test_pairs_with_an_empty_answer_are_dropped_with_a_warning(tmp_path, kind, caplog):
    from sso_exp.data.preferences import read_training_pairs

    row = partial(pair_row, kind)
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [row("a", "b"), row("  ", "b")]))
    assert [r["chosen"] for r in read_training_pairs(f)] == ["a"]
    assert "skipping 1 pairs with an empty chosen or rejected answer (the first is pair 2" in (
        caplog.text
    )
    f.write_text(json.dumps(row("a", "")) + "\n")
    with pytest.raises(DataError, match="every pair has an empty chosen or rejected answer"):
        read_training_pairs(f)
