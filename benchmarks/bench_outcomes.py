"""Cost of ``autoscan outcomes``' two size-dependent steps on a TNS-sized file, measured in one run:
reading a ``tns_public_objects.csv`` of R rows, and matching position-only classifications to
the N objects of a period, against the brute-force baseline (every object against every row).

    python benchmarks/bench_outcomes.py                        # R = 170,000 rows, N = 2,000, 20,000 objects
    python benchmarks/bench_outcomes.py --rows 20000 --objects 500 2000

The file is synthetic (seeded, TNS's 21 columns, one row in ten with a ZTF internal name, the rest
position-only as most TNS objects are); the objects sit on random rows' positions 0-1.5 arcsec
off, so the matcher finds about N matches. Peak memory is the process's maximum resident size.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from brightscan.autoscan.outcomes.classifications import read_classifications
from brightscan.autoscan.outcomes.decisions import ObjectDecision
from brightscan.autoscan.outcomes.report import _match_positions, _separation_deg

_HEADER = ('"objid","name_prefix","name","ra","declination","redshift","typeid","type","reporting_groupid",'
           '"reporting_group","source_groupid","source_group","discoverydate","discoverymag","discmagfilter",'
           '"filter","reporters","time_received","internal_names","creationdate","lastmodified"')


def _write_tns(path: Path, n_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ra = rng.uniform(0, 360, n_rows)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n_rows)))
    with open(path, "w") as fh:
        fh.write('"2026-12-04 00:00:00"\n' + _HEADER + "\n")
        for i in range(n_rows):
            internal = f"ZTF24{''.join(chr(97 + (i // 26 ** k) % 26) for k in range(7))}" if i % 10 == 0 else f"ATLAS24{i}"
            fh.write(f'"{i}","SN","2024{i}","{ra[i]:.6f}","{dec[i]:.6f}","","1","SN Ia","","","","",'
                     f'"2024-05-01 00:00:00","{17 + 3 * rng.random():.2f}","r","r","x","2024-05-01 00:00:00",'
                     f'"{internal}","2024-05-01","2024-05-10 00:00:00"\n')
    return ra, dec


def _brute(decisions, rows, radius_arcsec):
    ras = np.array([r.ra for r in rows])
    decs = np.array([r.dec for r in rows])
    found = 0
    for d in decisions.values():
        sep = _separation_deg(d.ra, d.dec, ras, decs) * 3600
        found += bool(sep.min() <= radius_arcsec)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=170_000)
    parser.add_argument("--objects", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--brute-max", type=int, default=2_000, help="largest N the brute force is timed at")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"python {platform.python_version()}, {platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tns_public_objects.csv"
        _write_tns(path, args.rows, rng)
        start = time.perf_counter()
        table = read_classifications(path)
        read_s = time.perf_counter() - start
    rows = [r for r in table.rows if r.object_id is None]
    print(f"read {args.rows:,} TNS rows ({path.name}, {len(table.errors)} rejected): {read_s:.2f} s, "
          f"{args.rows / read_s:,.0f} rows/s")
    for n in args.objects:
        picks = rng.choice(len(rows), size=n, replace=False)
        decisions = {}
        for k, i in enumerate(picks):
            off = rng.uniform(0, 1.5) / 3600
            decisions[f"o{k}"] = ObjectDecision(f"o{k}", 0.0, 1, k, 0.0, 0.5, ra=rows[i].ra,
                                                dec=float(np.clip(rows[i].dec + off, -90, 90)))
        start = time.perf_counter()
        matched = _match_positions(decisions, rows, 2.0, set())
        fast_s = time.perf_counter() - start
        line = f"match {n:,} objects against {len(rows):,} position-only rows: {fast_s:.3f} s ({len(matched):,} matched)"
        if n <= args.brute_max:
            start = time.perf_counter()
            found = _brute(decisions, rows, 2.0)
            brute_s = time.perf_counter() - start
            line += f"; brute force {brute_s:.2f} s ({found:,} within 2 arcsec): {brute_s / fast_s:.0f}x"
        print(line)
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
