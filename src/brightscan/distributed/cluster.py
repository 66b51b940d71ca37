"""Where the work runs: ``--cluster`` parsed, a dask cluster opened, threads budgeted.

``--cluster`` takes

- ``local`` or ``local:N``: a ``dask.distributed`` LocalCluster of N worker processes (default:
  one per core) on this machine;
- ``tcp://HOST:PORT``: an existing scheduler (workers started by you, e.g. ``dask worker``);
- ``slurm`` or ``pbs``: a ``dask-jobqueue`` cluster whose jobs are described in the config file
  (``[cluster.slurm]`` / ``[cluster.pbs]``, see :func:`jobqueue_options` and docs/distributed.md).

Threads: each worker runs one task at a time (one dask thread) and gives the model
``cores // workers`` native threads, so workers x threads never exceed the cores.

Local workers run with two of dask's defaults changed (:func:`worker_settings`), which together
cost them about a third more CPU per alert than the same job in one process (measured in
``benchmarks/bench_cluster.py``, docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brightscan.errors import ConfigError, InputError

__all__ = ["ClusterSpec", "available_cores", "jobqueue_options", "open_client", "parse_cluster", "worker_settings"]

#: Keys of ``[cluster.slurm]`` / ``[cluster.pbs]`` passed to dask-jobqueue as they are.
JOBQUEUE_KEYS = ("queue", "account", "cores", "memory", "walltime", "processes", "interface",
                 "local_directory", "log_directory", "job_extra_directives", "job_script_prologue",
                 "python", "job_name")
#: Keys of the section that brightscan itself reads.
OWN_KEYS = ("jobs",)


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster`` value."""

    kind: str  # "local", "tcp", "slurm" or "pbs"
    workers: int | None = None  # local: worker processes (None: one per core)
    address: str | None = None  # tcp: the scheduler's address


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and batch systems set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_cluster(text: str) -> ClusterSpec:
    """Parse ``local[:N]``, ``tcp://HOST:PORT``, ``slurm`` or ``pbs``.

    Raises
    ------
    InputError
        For anything else, or ``local:N`` with more workers than cores.
    """
    text = text.strip()
    match = re.fullmatch(r"local(?::(\d+))?", text)
    if match:
        workers = int(match.group(1)) if match.group(1) else None
        cores = available_cores()
        if workers is not None and not 1 <= workers <= cores:
            raise InputError(f"--cluster {text}: between 1 and {cores} workers on this machine "
                             f"({cores} cores; one task per worker, workers x threads <= cores)")
        return ClusterSpec("local", workers=workers)
    if re.fullmatch(r"tcp://[^\s:/]+:\d+", text):
        return ClusterSpec("tcp", address=text)
    if text in ("slurm", "pbs"):
        return ClusterSpec(text)
    raise InputError(f"--cluster {text!r}: expected local, local:N, tcp://HOST:PORT, slurm or pbs")


def jobqueue_options(kind: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """The dask-jobqueue keyword arguments and the number of jobs, from a config's ``[cluster.KIND]``.

    ``processes`` defaults to ``cores``: one single-threaded worker per core of a job, each
    running one partition at a time, so workers x threads equal the cores asked for.

    Raises
    ------
    ConfigError
        When the section is missing, lacks ``cores``, ``memory`` or ``walltime``, has an unknown
        key, or asks for more processes than cores.
    """
    section = config.get("cluster", {}).get(kind)
    if not isinstance(section, Mapping):
        raise ConfigError(f"--cluster {kind} needs a [cluster.{kind}] section in the config file")
    unknown = sorted(set(section) - set(JOBQUEUE_KEYS) - set(OWN_KEYS))
    if unknown:
        raise ConfigError(f"[cluster.{kind}]: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join((*JOBQUEUE_KEYS, *OWN_KEYS))}")
    missing = [k for k in ("cores", "memory", "walltime") if k not in section]
    if missing:
        raise ConfigError(f"[cluster.{kind}] lacks {', '.join(missing)}")
    options = {k: section[k] for k in JOBQUEUE_KEYS if k in section}
    cores = _positive(options["cores"], f"[cluster.{kind}] cores")
    options["processes"] = _positive(options.get("processes", cores), f"[cluster.{kind}] processes")
    if options["processes"] > cores:
        raise ConfigError(f"[cluster.{kind}] processes ({options['processes']}) > cores ({cores})")
    jobs = _positive(section.get("jobs", 1), f"[cluster.{kind}] jobs")
    return options, jobs


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, not {value!r}")
    return value


def read_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """Read a TOML config file (empty when ``path`` is None)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def worker_settings() -> dict[str, Any]:
    """The dask settings of the local workers brightscan starts, where they differ from dask's:

    - ``MALLOC_TRIM_THRESHOLD_`` is not set in the workers' environment. Dask sets it (65536) to
      hand freed memory back to the system; setting it also turns off glibc's adaptive mmap
      threshold, so every freed batch of triplets (~1.5 MB) is unmapped and faulted in again: 2.5x
      the page faults and 3x the system time of one process;
    - the statistical profiler (a stack sample of every thread each 10 ms) is off; it only feeds
      the dashboard's profile page.

    Everything else (OMP/MKL/OpenBLAS at one thread per worker, ...) is dask's.
    """
    import dask

    environ = {k: v for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ") or {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    return {"distributed.worker.profile.enabled": False, "distributed.nanny.pre-spawn-environ": environ}


@contextlib.contextmanager
def open_client(spec: ClusterSpec, config: Mapping[str, Any] | None = None, *,
                tuned: bool = True) -> Iterator[tuple[Any, int]]:
    """Open the cluster and a client to it; yield ``(client, model_threads)``.

    ``model_threads`` is the native threads each worker's model may use: ``cores // workers``
    on a local cluster, ``cores // processes`` per job on a batch system, and, on an existing
    scheduler, the least over its hosts of ``host cores // dask threads on that host``.
    A local cluster's workers get :func:`worker_settings` (``tuned=False``: dask's defaults, for
    benchmarks that compare the two).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - the extra is part of dev
        raise ConfigError("--cluster needs dask.distributed: pip install 'brightscan[dask]'") from None
    if spec.kind == "local":
        import dask

        cores = available_cores()
        workers = spec.workers or cores
        with dask.config.set(worker_settings() if tuned else {}):  # nannies keep them, restarts included
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address="127.0.0.1:0")
        with cluster, Client(cluster) as client:
            yield client, max(1, cores // workers)
    elif spec.kind == "tcp":
        with Client(spec.address, timeout="30s") as client:
            yield client, _remote_threads(client)
    else:
        options, jobs = jobqueue_options(spec.kind, config or {})
        cluster_cls = _jobqueue_class(spec.kind)
        with cluster_cls(**options) as cluster:
            cluster.scale(jobs=jobs)
            with Client(cluster) as client:
                yield client, max(1, options["cores"] // options["processes"])


def _jobqueue_class(kind: str) -> Any:
    try:
        import dask_jobqueue
    except ImportError:  # pragma: no cover - the extra is part of dev
        raise ConfigError(f"--cluster {kind} needs dask-jobqueue: pip install 'brightscan[dask]'") from None
    return {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]


def _remote_threads(client: Any) -> int:
    """Model threads for an existing cluster: min over hosts of host cores // dask threads there."""
    client.wait_for_workers(1, timeout=60)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(available_cores)
    per_host: dict[str, list[int]] = {}
    for address, info in workers.items():
        host = info.get("host", address)
        per_host.setdefault(host, [cores.get(address, 1), 0])[1] += info.get("nthreads", 1)
    return max(1, min(c // max(t, 1) for c, t in per_host.values()))
