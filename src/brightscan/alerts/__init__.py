"""Reading ZTF alert packets from Avro files, nightly tarballs, broker Parquet and directories."""

from brightscan.alerts.avro import decode_avro, read_avro_stream
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.alerts.reader import SUFFIXES, count_alerts, iter_input_files, read_alerts, read_file
from brightscan.alerts.records import CUTOUT_FIELDS, Alert, Rejection, alert_from_record

__all__ = [
    "CUTOUT_FIELDS",
    "DEFAULT_LIMITS",
    "SUFFIXES",
    "Alert",
    "ReadLimits",
    "Rejection",
    "alert_from_record",
    "count_alerts",
    "decode_avro",
    "iter_input_files",
    "read_alerts",
    "read_avro_stream",
    "read_file",
]
