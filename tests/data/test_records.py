"""Prompt files and the authors' record format, read and written unchanged."""

import json

import pytest

from sso_exp.data.records import RECORD_FIELDS, load_prompts, make_record, read_records, write_jsonl
from sso_exp.errors import DataError


def test_demo_queries_ship_with_the_package():
    prompts = load_prompts(None)
    assert len(prompts) >= 150 and len(set(prompts)) == len(prompts)


def test_prompt_or_instruction_field(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"prompt": "a"}\n\n{"instruction": " b "}\n')
    assert load_prompts(str(f)) == ["a", "b"]


def test_shared_prompt_files_load(data_dir):
    assert len(load_prompts(str(data_dir / "alpaca_prompts_2k.jsonl"))) == 2000


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"prompt": "a"}\n{"prompt": oops}\n', r"q.jsonl:2: invalid JSON"),
        ('{"prompt": "a"}\n{"text": "b"}\n', r"q.jsonl:2: no 'prompt' or 'instruction'"),
        ("[1, 2]\n", r"q.jsonl:1: expected a JSON object"),
        ("\n", r"q.jsonl: no prompts"),
    ],
)
def test_bad_prompt_files_name_file_and_line(tmp_path, text, match):
    f = tmp_path / "q.jsonl"
    f.write_text(text)
    with pytest.raises(DataError, match=match):
        load_prompts(str(f))


@pytest.mark.parametrize(
    "raw, match",
    [
        (
            '{"prompt": "a"}\n'.encode("utf-16"),
            r"q.jsonl:1: not UTF-8 text \(byte 0xff at column 1\)",
        ),
        (b'{"prompt": "a"}\n{"prompt": "\x80\x00"}\n', r"q.jsonl:2: not UTF-8 text .*column 13"),
    ],
)
def test_a_prompt_file_not_in_utf8_names_file_line_and_byte(tmp_path, raw, match):
    f = tmp_path / "q.jsonl"
    f.write_bytes(raw)
    with pytest.raises(DataError, match=match):
        load_prompts(str(f))


def test_missing_prompt_file(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_prompts(str(tmp_path / "nope.jsonl"))


def test_records_have_the_authors_fields(tmp_path, data_dir):
    authors = json.loads((data_dir / "sso_example.json").read_text())
    rec = make_record(
        authors["instruction"],
        authors["p_system"],
        authors["n_system"],
        authors["chosen"],
        authors["rejected"],
        authors["raw"],
    )
    assert tuple(rec) == RECORD_FIELDS and set(rec) == set(authors)
    assert rec["system"] == "" and rec["history"] == []
    write_jsonl([rec], tmp_path / "pairs.jsonl")
    assert json.loads((tmp_path / "pairs.jsonl").read_text()) == rec


def test_authors_file_round_trips(tmp_path, data_dir):
    (authors,) = read_records(data_dir / "sso_example.json")
    write_jsonl([authors], tmp_path / "pairs.jsonl")
    assert read_records(tmp_path / "pairs.jsonl") == [authors]
    (tmp_path / "one.json").write_text(json.dumps([authors, authors]))
    assert read_records(tmp_path / "one.json") == [authors, authors]


def test_records_without_text_fields_name_the_line(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"instruction": "q", "chosen": "a"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:1: record lacks"):
        read_records(tmp_path / "p.jsonl")
