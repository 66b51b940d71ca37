"""Beyond one process: partitioned runs of ``score`` and ``preprocess`` (and ``dataset build``) on
dask.distributed — a local cluster, an existing scheduler, or SLURM/PBS through dask-jobqueue.

Tasks take a partition's paths and return a manifest row; workers read and write the data
themselves; the model is loaded once per worker by a plugin. See docs/distributed.md.
"""

from brightscan.distributed.cluster import ClusterSpec, available_cores, jobqueue_options, open_client, parse_cluster
from brightscan.distributed.jobs import PreprocessJob, ScoreJob, read_triplets
from brightscan.distributed.partitions import Partition, RunLayout, plan_partitions
from brightscan.distributed.runner import RunSummary, run_partitioned

__all__ = [
    "ClusterSpec", "Partition", "PreprocessJob", "RunLayout", "RunSummary", "ScoreJob", "available_cores",
    "jobqueue_options", "open_client", "parse_cluster", "plan_partitions", "read_triplets", "run_partitioned",
]
