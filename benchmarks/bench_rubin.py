"""Rubin alerts on one core: reading per alert, and alert bytes -> model inputs, next to ZTF.

Rows, each per alert, with ZTF's real packets (../shared/data/real-alerts/ztf-avro, one Avro
container each) measured in the same run as the baseline:

(a) reading only: bytes in memory -> ``RubinAlert`` / ``Alert`` (``decode_avro``), for Rubin's
    wire-format messages, its Avro container file and Fink's Parquet (``read_alerts``);
(b) bytes -> model inputs: reading + triplet + features through the one ``Pipeline`` (Rubin:
    ``rubin_v1``, 48 px; ZTF: ``v1``, 63 px), the work a scoring worker does before the model;
(c) model only, torch float32, one thread, batch 256 of random inputs: ``mi_cnn.rubin`` and
    BTSbot 2's ``mm_cnn.rubin`` (48 px, the Rubin demo's) next to ``mi_cnn.icml2023`` (63 px).

Row "(a) ... whole decode" decodes the Fink container without the projection (every field of the
~350 earlier sources and the ~400 forced sources): reading as it was before, in the same run. Row
"(a) ... no layouts" decodes it with the projection but without the learnt byte layouts of
``alerts/avro_shapes.py`` (one general regular expression per record, then a dict per earlier
source: no walk at once, no numpy columns), as before the layouts.

The Rubin messages are the real samples in ../shared/data/rubin-alerts (pre-survey, DC2-like and
LSSTCam; 30-48 px stamps, up to ~400 earlier sources each). Times are process CPU time (robust to
other load on a shared machine), the best of ``--rounds`` interleaved rounds of ``--repeat`` passes.

Run: ``python benchmarks/bench_rubin.py [--repeat 20] [--rounds 5]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: single-threaded BLAS

import argparse  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from brightscan.alerts import Rejection, decode_avro, read_alerts  # noqa: E402
from brightscan.preprocess.pipeline import Pipeline  # noqa: E402

SHARED = Path(os.environ.get("BRIGHTSCAN_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared"))


def cpu_line() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", text)
    flags = sorted(set(re.findall(r"\b(amx_bf16|amx_tile|avx512_bf16|avx512_vnni|avx_vnni)\b", text)))
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"CPU: {model.group(1) if model else platform.processor()}; flags: {' '.join(flags) or 'none'}; "
            f"load average {load[0]:.2f}; cores {os.cpu_count()}")


def best_per_item(work: Callable[[], int], repeat: int) -> tuple[float, int]:
    start = time.process_time()
    count = 0
    for _ in range(repeat):
        count += work()
    return (time.process_time() - start) / max(count, 1), count // repeat


def model_only(preset: str, batch: int = 256) -> Callable[[], int]:
    import numpy as np
    import torch

    from brightscan.model import create_model

    torch.set_num_threads(1)
    model = create_model(preset, seed=0, device="cpu")
    config = model.config
    rng = np.random.default_rng(0)
    triplets = torch.from_numpy(rng.normal(size=(batch, config.image_size, config.image_size, 3)).astype(np.float32))
    features = torch.from_numpy(rng.normal(size=(batch, config.n_features)).astype(np.float32))

    def run() -> int:
        with torch.inference_mode():
            model(triplets, features)
        return batch
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rubin_dir, ztf_dir = SHARED / "data" / "rubin-alerts", SHARED / "data" / "real-alerts" / "ztf-avro"
    wire = [p.read_bytes() for p in sorted(rubin_dir.glob("*.avro")) if p.read_bytes()[:1] == b"\x00"]
    container = [p.read_bytes() for p in sorted(rubin_dir.glob("*.avro")) if p.read_bytes()[:4] == b"Obj\x01"]
    parquet = sorted(rubin_dir.glob("*.parquet"))
    ztf = [p.read_bytes() for p in sorted(ztf_dir.glob("*.avro"))]

    def decode_all(blobs: list[bytes]) -> Callable[[], int]:
        return lambda: sum(1 for blob in blobs for item in decode_avro(blob) if not isinstance(item, Rejection))

    def read_files(paths: list[Path]) -> Callable[[], int]:
        return lambda: sum(1 for item in read_alerts(paths) if not isinstance(item, Rejection))

    def inputs(blobs: list[bytes], feature_set: str) -> Callable[[], int]:
        def run() -> int:
            items = (item for blob in blobs for item in decode_avro(blob))
            return len(Pipeline(feature_set).prepare(items))
        return run

    def decode_whole(blobs: list[bytes], projected: bool = False) -> Callable[[], int]:
        # the Fink container decoded whole (every history field, forced photometry), as before the
        # projection of alerts.rubin.RUBIN_PROJECTION: the reading cost that the projection removes;
        # projected=True: the projection with no learnt layouts (alerts/avro_shapes.py), as before them
        import io
        import json

        from brightscan.alerts import avro_shapes
        from brightscan.alerts.avro import _iter_blocks, _read_header
        from brightscan.alerts.avro_compiler import compile_reader
        from brightscan.alerts.limits import DEFAULT_LIMITS
        from brightscan.alerts.rubin import rubin_alert_from_record, rubin_projection

        def compiled(text: bytes) -> Callable:
            schema = json.loads(text)
            return compile_reader(schema, rubin_projection(schema) if projected else None)

        def run() -> int:
            count, limit = 0, avro_shapes.MAX_SHAPES
            avro_shapes.MAX_SHAPES = 0 if projected else limit  # read at decoding time: no layout learnt
            try:
                for blob in blobs:
                    stream = io.BytesIO(blob)
                    stream.read(4)
                    metadata, sync = _read_header(stream)
                    text = metadata["avro.schema"]
                    decode = decoders[text] if text in decoders else decoders.setdefault(text, compiled(text))
                    for block in _iter_blocks(stream, sync, "null", DEFAULT_LIMITS):
                        record, _ = decode(block[1], 0)
                        count += not isinstance(rubin_alert_from_record(record, "x"), Rejection)
            finally:
                avro_shapes.MAX_SHAPES = limit
            return count
        decoders: dict[bytes, Callable] = {}
        return run

    rows = {
        "(a) ZTF Avro container (baseline)": decode_all(ztf),
        "(a) Rubin wire-format message": decode_all(wire),
        "(a) Rubin Avro container (Fink)": decode_all(container),
        "(a) Rubin Avro container (Fink), whole decode": decode_whole(container),
        "(a) Rubin Avro container (Fink), no layouts": decode_whole(container, projected=True),
        "(a) Rubin Parquet (Fink)": read_files(parquet),
        "(b) ZTF bytes -> inputs, v1 63 px (baseline)": inputs(ztf, "v1"),
        "(b) Rubin wire bytes -> inputs, rubin_v1 48 px": inputs(wire, "rubin_v1"),
        "(b) Rubin container bytes -> inputs, rubin_v1 48 px": inputs(container, "rubin_v1"),
    }
    sizes = {name: sum(map(len, blobs)) for name, blobs in (
        ("ZTF", ztf), ("wire", wire), ("container", container))}
    sizes["Parquet"] = sum(p.stat().st_size for p in parquet)
    rows.update({f"(c) model only, {preset}": model_only(preset) for preset in ("mi_cnn.icml2023", "mi_cnn.rubin",
                                                                                  "mm_cnn.rubin")})
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.rounds):  # interleaved, so a burst of load hits every row alike
        for name, work in rows.items():
            result = best_per_item(work, args.repeat)
            if name not in best or result[0] < best[name][0]:
                best[name] = result
    print(cpu_line())
    print(f"best of {args.rounds} rounds x {args.repeat} passes, process CPU time per accepted alert")
    print("(bytes: the packets' own size; alerts with long histories are larger and take longer)")
    for name, (seconds, count) in best.items():
        if name.startswith("(c)"):
            base = best["(c) model only, mi_cnn.icml2023"][0]
            print(f"{name:52s} {seconds * 1e6:8.0f} us/alert {1 / seconds:7.0f} alerts/s/core  x{seconds / base:5.2f} "
                  "of the 63 px model")
            continue
        base = best["(a) ZTF Avro container (baseline)" if name.startswith("(a)") else
                    "(b) ZTF bytes -> inputs, v1 63 px (baseline)"][0]
        size = next(v for k, v in sizes.items() if k in name) / max(count, 1)
        print(f"{name:52s} {seconds * 1e6:8.0f} us/alert {1 / seconds:7.0f} alerts/s/core  x{seconds / base:5.2f} "
              f"of ZTF  {size / 1e3:6.0f} kB/alert {size / seconds / 1e6:6.1f} MB/s  ({count} alerts)")


if __name__ == "__main__":
    main()
