"""``--cluster`` values and the SLURM/PBS configuration: translated into real dask-jobqueue job
scripts (nothing is submitted; no batch system runs here)."""

from __future__ import annotations

import pytest

from brightscan.distributed import available_cores, jobqueue_options, parse_cluster
from brightscan.errors import ConfigError, InputError

SLURM = {"cluster": {"slurm": {
    "queue": "regular", "account": "m4321", "cores": 32, "memory": "120GB", "walltime": "04:00:00",
    "jobs": 10, "job_extra_directives": ["--constraint=cpu"], "local_directory": "/tmp",
}}}


def test_cluster_values() -> None:
    assert parse_cluster("local").workers is None
    assert parse_cluster("local:1").workers == 1
    assert parse_cluster("tcp://sched.example.org:8786").address == "tcp://sched.example.org:8786"
    assert parse_cluster("slurm").kind == "slurm" and parse_cluster("pbs").kind == "pbs"
    with pytest.raises(InputError, match="workers"):
        parse_cluster(f"local:{available_cores() + 1}")  # workers x threads would exceed the cores
    with pytest.raises(InputError, match="expected local"):
        parse_cluster("kubernetes")


def test_slurm_section_becomes_jobqueue_options() -> None:
    options, jobs = jobqueue_options("slurm", SLURM)
    assert jobs == 10
    assert options["processes"] == 32  # one single-threaded worker per core by default
    assert options["queue"] == "regular" and options["walltime"] == "04:00:00"
    with pytest.raises(ConfigError, match=r"needs a \[cluster.pbs\]"):
        jobqueue_options("pbs", SLURM)
    bad = {"cluster": {"slurm": {**SLURM["cluster"]["slurm"], "gpus": 4}}}
    with pytest.raises(ConfigError, match="unknown key"):
        jobqueue_options("slurm", bad)
    missing = {"cluster": {"slurm": {"cores": 4, "memory": "8GB"}}}
    with pytest.raises(ConfigError, match="lacks walltime"):
        jobqueue_options("slurm", missing)
    over = {"cluster": {"slurm": {"cores": 4, "memory": "8GB", "walltime": "1:00:00", "processes": 8}}}
    with pytest.raises(ConfigError, match="processes"):
        jobqueue_options("slurm", over)


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_the_job_script_dask_jobqueue_writes(kind: str) -> None:
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    config = {"cluster": {kind: {**SLURM["cluster"]["slurm"], "processes": 8}}}
    options, _ = jobqueue_options(kind, config)
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    with cls(**options) as cluster:  # starts a scheduler here; submits nothing
        script = cluster.job_script()
    assert "--nworkers 8" in script and "--nthreads 4" in script  # 8 workers x 4 threads = 32 cores
    if kind == "slurm":
        for line in ("#SBATCH -p regular", "#SBATCH -A m4321", "#SBATCH --cpus-per-task=32",
                     "#SBATCH -t 04:00:00", "#SBATCH --constraint=cpu"):
            assert line in script
        assert "#SBATCH --mem=112G" in script  # dask-jobqueue's own rounding of 120GB
    else:
        assert "#PBS -q regular" in script and "walltime=04:00:00" in script


def _worker_settings() -> tuple:
    import os

    import dask

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), dask.config.get("distributed.worker.profile.enabled")


def test_local_workers_run_without_the_settings_that_cost_cpu_per_alert() -> None:
    """No malloc trim threshold (page-fault churn) and no statistical profiler in the workers we
    start (docs/benchmarks.md); dask's defaults when asked, as the benchmark's baseline."""
    pytest.importorskip("distributed")
    from brightscan.distributed import ClusterSpec, open_client

    with open_client(ClusterSpec("local", workers=1)) as (client, _):
        assert list(client.run(_worker_settings).values()) == [(None, False)]
    with open_client(ClusterSpec("local", workers=1), tuned=False) as (client, _):
        assert list(client.run(_worker_settings).values()) == [("65536", True)]
