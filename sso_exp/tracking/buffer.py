"""The tracking buffer: MLflow calls recorded while the server is away, one JSON line each,
replayed when it answers. JSON, never pickle: a run folder is shared between colleagues and
clusters, and reading a file from one must not be able to run code. MLflow's entities in the
calls (metrics, params, tags, dataset inputs) go as their protobuf's JSON, named by type and
rebuilt only from the types listed here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, List, Tuple

from google.protobuf.json_format import MessageToDict, ParseDict
from mlflow.entities import DatasetInput, Metric, Param, RunTag

from ..errors import DataError

Call = Tuple[str, list, dict]  # the client method's name, its args and kwargs
ENTITIES = {cls.__name__: cls for cls in (Metric, Param, RunTag, DatasetInput)}
TAG = "__mlflow_entity__"


def _encode(value: Any) -> Any:
    if isinstance(value, tuple(ENTITIES.values())):
        return {TAG: type(value).__name__, "proto": MessageToDict(value.to_proto())}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and TAG in value:
        cls = ENTITIES[value[TAG]]  # KeyError: a type this file may not name
        return cls.from_proto(ParseDict(value["proto"], type(_proto_of(cls))()))
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def _proto_of(cls: type):
    """An empty protobuf message of the entity's kind (its class is what ParseDict fills)."""
    from mlflow.protos import service_pb2

    return getattr(service_pb2, cls.__name__)()


def append_calls(path: Path, calls: Iterable[Call], mode: str = "a") -> None:
    """Each call as a line of `path` (mode "w" writes the file afresh)."""
    with path.open(mode, encoding="utf-8") as fh:
        for name, args, kwargs in calls:
            line = {"call": name, "args": _encode(list(args)), "kwargs": _encode(kwargs)}
            fh.write(json.dumps(line) + "\n")


def read_calls(path: Path) -> List[Call]:
    """The buffered calls; a last line cut short by a kill is dropped, any other bad line
    stops with the file and line named."""
    lines = path.read_bytes().splitlines()  # json decodes each as UTF-8 (or refuses it)
    calls = []
    for number, text in enumerate(lines, 1):
        try:
            line = json.loads(text)
            calls.append((line["call"], _decode(line["args"]), _decode(line["kwargs"])))
        except (ValueError, KeyError, TypeError) as err:
            if number == len(lines) and isinstance(err, json.JSONDecodeError):
                break  # the write a kill cut short
            raise DataError(f"{path}:{number}: not a buffered tracking call ({err!r})") from None
    return calls
