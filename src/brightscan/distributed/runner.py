"""Run a job over partitions: skip the finished ones, run the rest in-process or on a dask client,
collect their manifest rows.

Failure semantics: a worker that dies mid-task loses nothing — dask runs its task elsewhere, and
the partition's files are replaced, never appended to. A partition whose task raises (a bug: bad
alerts are rejections, not exceptions) does not stop the others; at the end
:class:`~brightscan.errors.BrightscanError` names the failed partitions, which have no manifest
entry, so a rerun redoes exactly them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brightscan.distributed.partitions import Partition, RunLayout, plan_partitions
from brightscan.errors import BrightscanError

__all__ = ["RunSummary", "map_partitions", "run_partitioned"]

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a partitioned run did."""

    root: Path
    partitions: int = 0  # partitions planned
    skipped: int = 0  # finished by an earlier run, not redone
    done: list[dict[str, Any]] = field(default_factory=list)  # manifest rows of this run's partitions
    seconds: float = 0.0
    dashboard: str | None = None  # the dask dashboard's address, when a cluster ran

    @property
    def rows(self) -> int:
        return sum(r["rows"] for r in self.done)

    @property
    def rejections(self) -> int:
        return sum(r["rejections"] for r in self.done)


def run_partitioned(job: Any, inputs: Iterable[Any], out: str | Path, *, client: Any = None,
                    model_threads: int | None = None, resume: bool = False,
                    on_start: Callable[[int, int], None] | None = None,
                    on_done: Callable[[dict[str, Any]], None] | None = None) -> RunSummary:
    """Run ``job`` over the partitions of ``inputs`` into the partitioned dataset ``out``.

    Parameters
    ----------
    job : ScoreJob or PreprocessJob
        What to do with each partition.
    inputs : iterable of paths
        Alert files or folders (see :func:`~brightscan.distributed.partitions.plan_partitions`).
    out : path
        The run folder; a rerun into it skips the partitions its manifest lists as finished.
    client : distributed.Client, optional
        Where to run; default in this process, one partition after another.
    model_threads : int, optional
        Native model threads per worker (or in-process); default: the runtime's choice.
    resume : bool
        Require ``out`` to hold a run to resume (a plain rerun skips finished partitions too).
    on_start, on_done : callable, optional
        Called with ``(to_do, skipped)`` once planned, then with each finished partition's row.

    Raises
    ------
    ConfigError
        When ``out`` holds another run, or ``resume`` finds none.
    BrightscanError
        When some partitions failed (after all others finished).
    """
    t0 = time.perf_counter()
    job.check_partitioned()
    layout = RunLayout(out, job.data)
    partitions = plan_partitions(inputs)
    layout.start(job.run_card(), resume=resume)
    todo = [p for p in partitions if layout.finished(p) is None]
    summary = RunSummary(layout.root, partitions=len(partitions), skipped=len(partitions) - len(todo))
    if on_start is not None:
        on_start(len(todo), summary.skipped)
    done = on_done or (lambda row: None)
    if client is None:
        failed = _run_here(job, todo, layout, model_threads, summary, done)
    else:
        summary.dashboard = client.dashboard_link
        failed = _run_on(client, job, todo, layout, model_threads, summary, done)
    summary.seconds = time.perf_counter() - t0
    if failed:
        names = ", ".join(f"{p.name} ({exc})" for p, exc in failed[:5])
        raise BrightscanError(f"{len(failed)} of {len(todo)} partition(s) failed: {names}"
                              f"{' ...' if len(failed) > 5 else ''}; rerun to redo only them")
    return summary


def _run_here(job: Any, todo: list[Partition], layout: RunLayout, model_threads: int | None,
              summary: RunSummary, done: Callable) -> list[tuple[Partition, BaseException]]:
    if todo:
        job.setup(model_threads)
    failed = []
    for partition in todo:
        try:
            row = job(partition, layout)
        except Exception as exc:  # noqa: BLE001 - reported with the partition, others go on
            log.exception("partition %s failed", partition.name)
            failed.append((partition, exc))
            continue
        summary.done.append(row)
        done(row)
    return failed


def _run_on(client: Any, job: Any, todo: list[Partition], layout: RunLayout, model_threads: int | None,
            summary: RunSummary, done: Callable) -> list[tuple[Partition, BaseException]]:
    from distributed import as_completed

    from brightscan.distributed.worker import JobPlugin, run_partition

    client.register_plugin(JobPlugin(job, model_threads or 1))
    futures = {
        client.submit(run_partition, p, str(layout.root), layout.data, key=f"partition-{p.name}", pure=False): p
        for p in todo
    }
    failed = []
    for future in as_completed(futures):
        partition = futures[future]
        if future.status == "error":
            exc = future.exception()
            log.error("partition %s failed: %s", partition.name, exc)
            failed.append((partition, exc))
            continue
        row = future.result()
        summary.done.append(row)
        done(row)
    return failed


def map_partitions(func: Callable[[Partition], Any], partitions: list[Partition], client: Any = None) -> list[Any]:
    """``[func(p) for p in partitions]``, as dask tasks when a client is given; results in order.

    For small results only (they travel back to the client), e.g. a partition's detection records.
    """
    if client is None:
        return [func(p) for p in partitions]
    futures = client.map(func, partitions, key=[f"{func.__name__}-{p.name}" for p in partitions], pure=False)
    return client.gather(futures)
