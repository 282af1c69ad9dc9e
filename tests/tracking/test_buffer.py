"""The tracking buffer holds calls as JSON lines: MLflow's entities come back equal, a write
cut short by a kill is dropped, and a file naming anything else is refused, never run."""

import json

import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

from sso_exp.errors import DataError
from sso_exp.tracking.buffer import append_calls, read_calls

CALLS = [
    (
        "log_batch",
        ("run1",),
        {
            "metrics": [Metric("loss", float("nan"), 5, 2)],
            "params": [Param("p", "1")],
            "tags": [RunTag("t", "v")],
        },
    ),
    (
        "log_inputs",
        ("run1",),
        {
            "datasets": [
                DatasetInput(
                    Dataset(name="d", digest="x", source_type="local", source="{}"),
                    [InputTag("k", "v")],
                )
            ]
        },
    ),
    ("log_table", ("run1",), {"data": {"a": [1, None]}, "artifact_file": "t.json"}),
    ("set_terminated", ("run1", "FINISHED"), {}),
]


def protos(calls):
    """The calls with their entities as protobuf messages, which compare by value."""

    def plain(v):
        if hasattr(v, "to_proto"):
            return v.to_proto().SerializeToString(deterministic=True)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v

    return [(name, plain(list(args)), plain(kwargs)) for name, args, kwargs in calls]


def test_calls_come_back_as_they_went(tmp_path):
    path = tmp_path / "buffer.jsonl"
    append_calls(path, CALLS[:2])
    append_calls(path, CALLS[2:])
    assert protos(read_calls(path)) == protos(CALLS)
    append_calls(path, CALLS[:1], mode="w")
    assert len(read_calls(path)) == 1


def test_a_last_line_cut_short_is_dropped(tmp_path):
    path = tmp_path / "buffer.jsonl"
    append_calls(path, CALLS)
    path.write_text(path.read_text() + '{"call": "set_tag", "ar')
    assert protos(read_calls(path)) == protos(CALLS)


@pytest.mark.parametrize(
    "line",
    [
        {"call": "log_batch", "args": [{"__mlflow_entity__": "Popen", "proto": {}}], "kwargs": {}},
        {"call": "log_batch", "args": []},
        "not json",
    ],
)
def test_anything_else_is_refused_naming_the_line(tmp_path, line):
    path = tmp_path / "buffer.jsonl"
    append_calls(path, CALLS[:1])
    text = line if isinstance(line, str) else json.dumps(line)
    path.write_text(path.read_text() + text + "\n" + path.read_text())
    with pytest.raises(DataError, match="buffer.jsonl:2"):
        read_calls(path)
