"""``brightscan simulate``: write a simulated ZTF survey (alerts, labels, scanner saves)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from brightscan.cli.common import JSON_OPTION, QUIET_OPTION, Output, handle_errors
from brightscan.errors import ConfigError


def simulate(
    sources: int = typer.Option(1000, "--sources", "-n", min=1, help="Number of sources to simulate."),
    seed: int = typer.Option(0, "--seed", help="Master seed; the same seed gives the same files."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (alerts/, labels.csv, scanner_saves.csv)."),
    start_date: str = typer.Option("2023-03-01", "--start-date", help="First night of the survey (YYYY-MM-DD, UT)."),
    nights: int = typer.Option(365, "--nights", min=1, help="Length of the survey in nights."),
    class_mix: str = typer.Option("", "--class-mix", help="Fractions, e.g. 'bright_sn=0.3,agn=0.2' (others keep defaults)."),
    label_from: str = typer.Option("observed", "--label-from", help="labels.csv 'label': observed (an alert brighter than 18.5 mag, as BTS) or true_peak."),
    tarball: bool = typer.Option(False, "--tarball", help="Write alerts/ztf_public_YYYYMMDD.tar.gz per night."),
    workers: int = typer.Option(2, "--workers", "-j", min=1, help="Worker processes."),
    preview: Path = typer.Option(None, "--preview", help="Also (or only) draw a PNG sheet of example triplets per class."),
    survey: str = typer.Option("ztf", "--survey", help="ztf, or rubin (six bands, 0.2\" nJy FITS cutouts, lsst.v11_1 packets; docs/rubin.md)."),
    bright_limit: float = typer.Option(18.5, "--bright-limit", help="Rubin: label 1 for a supernova peaking brighter than this (mag)."),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Simulate a ZTF public survey: bright SNe, dim SNe, AGN, CVs, variable stars and bogus alerts."""
    from brightscan.simulate import ClassMix, SurveyConfig, simulate_survey, write_preview

    show = Output(quiet, as_json)
    if survey == "rubin":
        _simulate_rubin(show, out, sources=sources, seed=seed, nights=nights, bright_limit=bright_limit,
                        class_mix=class_mix)
        return
    with handle_errors():
        if survey != "ztf":
            raise ConfigError(f"--survey must be ztf or rubin, not {survey!r}")
        if out is None and preview is None:
            raise ConfigError("give --out DIR to write a survey and/or --preview OUT.png")
        try:
            start = datetime.strptime(start_date, "%Y-%m-%d").date()
        except ValueError:
            raise ConfigError(f"--start-date must be YYYY-MM-DD, got {start_date!r}") from None
        config = SurveyConfig(
            n_sources=sources, seed=seed, start_date=start, n_nights=nights, tarball=tarball, n_workers=workers,
            label_from=label_from,
            class_mix=ClassMix.parse(class_mix) if class_mix else ClassMix(),
        ).validate()
        if preview is not None:
            typer.echo(f"wrote {write_preview(preview, config)}")
        if out is None:
            return
        with show.progress() as progress:
            task = progress.add_task("simulating sources", total=sources)
            result = simulate_survey(config, out, progress=lambda n: progress.advance(task, n))
    show.result(
        f"wrote {result.n_alerts} alerts of {result.n_sources} sources ({result.n_positive_sources} bright SNe, "
        f"{result.n_saved} saved by scanners) to {result.out_dir} in {result.seconds:.1f} s "
        f"({result.n_alerts / max(result.seconds, 1e-9):.0f} alerts/s)",
        {"out": str(result.out_dir), "n_sources": result.n_sources, "n_alerts": result.n_alerts,
         "n_positive_sources": result.n_positive_sources, "n_saved": result.n_saved, "seconds": result.seconds},
    )


def _simulate_rubin(show: Output, out: Path | None, *, sources: int, seed: int, nights: int,
                    bright_limit: float, class_mix: str) -> None:
    import time

    from brightscan.simulate import ClassMix
    from brightscan.simulate.rubin import RubinSurveyConfig, simulate_rubin_survey

    with handle_errors():
        if out is None:
            raise ConfigError("give --out DIR to write a Rubin survey")
        config = RubinSurveyConfig(n_sources=sources, n_nights=nights, seed=seed, bright_limit=bright_limit,
                                   class_mix=ClassMix.parse(class_mix) if class_mix else ClassMix())
        start = time.perf_counter()
        counts = simulate_rubin_survey(config, out)
        seconds = time.perf_counter() - start
    show.result(f"wrote {counts['alerts']} Rubin alerts of {counts['sources']} sources ({counts['positive']} bright "
                f"SNe, {counts['saved']} saved by scanners) to {out} in {seconds:.1f} s",
                {"out": str(out), **counts, "seconds": seconds})
