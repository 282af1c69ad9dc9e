"""Opening the tracking store safely: a new sqlite store is made by one process at a time,
and an experiment made by another process in the same instant is found, not failed on
(runs and sweeps started together on a new store). Imports MLflow only, so a process can
open a store without torch."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ..config import TrackingConfig


def open_client(uri: str) -> MlflowClient:
    """A client on a store that is ready. A sqlite store is opened (created, or its schema
    migrated) under a lock on its folder: processes opening a new store at once (runs or
    sweeps started together) would otherwise race MLflow's migrations and break it for good."""
    if not uri.startswith("sqlite:///"):
        return MlflowClient(uri)
    folder = Path(uri[len("sqlite:///") :]).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return MlflowClient(uri)  # the store is made (or migrated) here, one at a time
    finally:
        os.close(fd)  # and the lock with it


def experiment_id(client: MlflowClient, tracking: TrackingConfig) -> str:
    """The experiment's id, made if new; when another process makes it in the same
    instant, theirs is used."""
    found = client.get_experiment_by_name(tracking.experiment_name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(tracking.experiment_name, tracking.artifact_location)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.get_experiment_by_name(tracking.experiment_name).experiment_id
