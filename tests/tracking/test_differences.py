"""Which differences between runs the comparison report calls real."""

import math

import mlflow
import pytest
from tracking.test_compare import SETTINGS, _log

from conftest import store
from sso_exp.tracking.compare import report
from sso_exp.tracking.differences import differences, holm_rejects


def test_a_difference_outside_both_intervals_is_called_and_one_inside_is_not():
    series = [
        {"acc": {1: 0.5, 2: 0.9}, "acc_se": {1: 0.1, 2: 0.03}, "len": {2: 100.0}},
        {"acc": {2: 0.6}, "acc_se": {2: 0.04}, "len": {2: 90.0}, "len_se": {2: 5.0}},
        {"acc": {2: 0.62}, "acc_se": {2: math.nan}},
    ]
    rows = differences(["sso", "pbaa", "broken"], series, ["acc", "len"])
    assert len(rows) == 1  # len lacks a's standard error; the third run's is NaN
    (row,) = rows
    assert (row["metric"], row["a"], row["b"]) == ("acc", "sso", "pbaa")
    assert row["a - b"] == pytest.approx(0.3)  # final iterations: 0.9 - 0.6
    assert row["±95%"] == pytest.approx(1.96 * 0.05, rel=1e-3)  # sqrt(0.03^2 + 0.04^2)
    assert row["p"] == pytest.approx(math.erfc(6 / math.sqrt(2)))  # z = 0.3 / 0.05
    assert row["outside 95%"] == row["after Holm"] == "yes"
    close = [{"acc": {1: 0.61}, "acc_se": {1: 0.04}}, series[1]]
    (row,) = differences(["x", "pbaa"], close, ["acc"])
    assert row["outside 95%"] == "no" and row["p"] > 0.5


def test_holm_tests_the_k_th_smallest_p_at_alpha_over_m_minus_k():
    # unadjusted, all three are under 0.05; Holm keeps 0.01 (< 0.05/3), then 0.03 fails
    # its 0.05/2 and stops the testing
    assert holm_rejects([0.04, 0.01, 0.03]) == [False, True, False]
    assert holm_rejects([0.001, 0.02, 0.04]) == [True, True, True]
    assert holm_rejects([]) == []


def test_the_report_writes_them_where_two_runs_logged_standard_errors(tmp_path):
    client = mlflow.MlflowClient(store(tmp_path))
    exp = client.create_experiment("study", artifact_location=str(tmp_path / "art"))
    for name, (acc, se) in {"sso": (0.9, 0.03), "pbaa": (0.6, 0.04)}.items():
        run = client.create_run(exp, run_name=name).info.run_id
        _log(client, run, {"train/loss": [acc], "train/loss_se": [se]})
        client.set_terminated(run, "FINISHED")
    paths = report(client, "study", "study", tmp_path / "out", SETTINGS)
    assert tmp_path / "out/differences.md" in paths
    table = (tmp_path / "out/differences.md").read_text()
    assert "| train/loss |" in table and "| yes | yes |" in table
