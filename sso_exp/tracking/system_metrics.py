"""System metrics in every run (CPU, memory, disk, network; GPU where nvidia-ml-py sees
one), sampled by MLflow's own monitor thread as `system/*`. MLflow starts that monitor in
`mlflow.start_run(log_system_metrics=True)`; Lightning's logger makes its run through the
client instead, so it is started here, around the run's work."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from ..config import TrackingConfig
from ..distributed import broadcast, first_on_host, is_main


@contextmanager
def system_metrics(
    tracking: TrackingConfig, run_id: Optional[str], resumed: bool
) -> Iterator[None]:
    """Sample while the block runs: rank 0 alone (`main`) or each node's first rank,
    labelled `node_<k>` (`nodes`); a resumed run's samples go on after its last step.
    Every rank enters (with `nodes` the run's id goes from rank 0 to the others)."""
    node = None
    if tracking.system_metrics == "nodes":
        run_id, index = broadcast(run_id), first_on_host()
        sampling, node = index is not None, f"node_{index}"
    else:
        sampling = tracking.system_metrics == "main" and is_main()
    if not sampling:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=tracking.system_metrics_interval_s,
        resume_logging=resumed,
        node_id=node,
        tracking_uri=tracking.uri,
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()  # before the run is closed: a sample after it would be refused
