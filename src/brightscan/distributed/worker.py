"""The parts that live in dask workers: the plugin that sets a job up once per worker, and the task.

Imports ``distributed`` (the ``dask`` extra) at module level; only the cluster code imports it.
"""

from __future__ import annotations

import logging
from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from brightscan.distributed.jobs import PLUGIN_NAME
from brightscan.distributed.partitions import Partition, RunLayout

__all__ = ["JobPlugin", "cpu_seconds", "peak_memory", "run_partition"]

log = logging.getLogger(__name__)


class JobPlugin(WorkerPlugin):
    """Builds the job's heavy objects (the model) once per worker, when the client registers it
    and whenever a worker (re)starts, so the model is never pickled into a task.

    Parameters
    ----------
    job : ScoreJob or PreprocessJob
        Pickled without its model; :meth:`setup` loads it in the worker.
    model_threads : int
        Native threads the model may use in each worker (workers x threads <= cores).
    """

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, job: Any, model_threads: int) -> None:
        self.job, self.model_threads = job, model_threads

    def setup(self, worker: Any) -> None:
        self.job.setup(self.model_threads)
        log.info("worker %s ready: %r with %d model thread(s)", worker.address, self.job, self.model_threads)


def run_partition(partition: Partition, root: str, data: str) -> dict[str, Any]:
    """The task: process ``partition`` with the job set up on this worker; return its manifest row."""
    job = get_worker().plugins[PLUGIN_NAME].job
    return job(partition, RunLayout(root, data))


def peak_memory() -> int:
    """Peak resident memory of this worker process in bytes: ``VmHWM`` of ``/proc/self/status``
    (``ru_maxrss`` would not do: Linux carries it over ``exec`` from the process that started us)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used, in seconds: load-independent accounting
    of what a worker costs, for benchmarks on shared machines."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
