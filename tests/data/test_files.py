"""Data files named by a config key are found in the working directory or the data folder;
a missing one names its key and says where such a file comes from."""

import pytest

from sso_exp.data.files import locate
from sso_exp.errors import ConfigError


def test_a_name_is_found_in_the_data_folder(tmp_path):
    (tmp_path / "gsm8k_test.jsonl").write_text("{}\n")
    assert (
        locate("eval.gsm8k.path", "gsm8k_test.jsonl", str(tmp_path))
        == tmp_path / "gsm8k_test.jsonl"
    )


def test_the_working_directory_comes_first(tmp_path, monkeypatch):
    (tmp_path / "mine.jsonl").write_text("{}\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "mine.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    assert locate("data.prompts", "mine.jsonl", "folder") == tmp_path / "mine.jsonl"


def test_a_missing_public_file_names_its_key_and_source(tmp_path):
    with pytest.raises(ConfigError) as err:
        locate("eval.alpaca.path", "alpaca_eval_gpt4_turbo.jsonl", str(tmp_path))
    text = str(err.value)
    assert "config key 'eval.alpaca.path'" in text and str(tmp_path) in text
    assert "tatsu-lab/alpaca_eval" in text and "SSO_EXP_DATA" in text


def test_a_missing_file_of_ones_own_names_its_key(tmp_path):
    with pytest.raises(ConfigError, match="config key 'data.prompts'.*point the key"):
        locate("data.prompts", str(tmp_path / "nope.jsonl"), str(tmp_path))


@pytest.mark.parametrize("name", ["/dev/zero", "."])
def test_something_that_is_not_a_file_is_named_so(tmp_path, name):
    with pytest.raises(ConfigError, match=f"config key 'data.prompts': {name} is not a regular"):
        locate("data.prompts", name, str(tmp_path))
