"""The outcomes report as a plain-text table (what ``autoscan outcomes`` prints without ``--json``)."""

from __future__ import annotations

from brightscan.autoscan.outcomes.report import Figures, ObjectOutcome, OutcomesReport

__all__ = ["format_report"]

_HEADER = (f"{'period':<12} {'saved':>5} {'bright':>6} {'false':>5} {'uncl.':>5}  {'purity [95%]':<20} "
           f"{'bright':>6} {'missed':>6}  {'completeness [95%]':<20} {'delay h [95%] (n)':<24}")
_MAX_LISTED = 50  # objects listed per table in text (the JSON has them all)


def _ratio(value: float | None, ci: list[float | None]) -> str:
    if value is None:
        return "-"
    lo, hi = ("?" if v is None else f"{v:.2f}" for v in ci)
    return f"{value:.2f} [{lo}, {hi}]"


def _delay(f: Figures) -> str:
    if f.median_delay_days is None:
        return "-"
    lo, hi = ("?" if v is None else f"{24 * v:+.1f}" for v in f.median_delay_days_ci)
    return f"{24 * f.median_delay_days:+.1f} [{lo}, {hi}] ({f.n_delays})"


def _row(label: str, f: Figures) -> str:
    return (f"{label:<12} {f.n_saved:>5} {f.n_saved_bright:>6} {f.n_false_saves:>5} {f.n_saved_unclassified:>5}  "
            f"{_ratio(f.purity, f.purity_ci):<20} {f.n_bright:>6} {f.n_missed:>6}  "
            f"{_ratio(f.completeness, f.completeness_ci):<20} {_delay(f):<24}")


def _objects(title: str, objects: list[ObjectOutcome]) -> list[str]:
    lines = [f"{title} ({len(objects)}):"]
    if not objects:
        return lines + ["  none"]
    lines.append(f"  {'objectId':<14} {'night':<10} {'type':<10} {'candid':>20} {'jd':>15} {'score':>6}  match")
    for o in objects[:_MAX_LISTED]:
        lines.append(f"  {o.object_id:<14} {o.night:<10} {(o.type or '-')[:10]:<10} {o.candid:>20} "
                     f"{o.jd:>15.5f} {o.score:>6.3f}  {o.match}")
    if len(objects) > _MAX_LISTED:
        lines.append(f"  ... and {len(objects) - _MAX_LISTED} more (--json lists them all)")
    return lines


def format_report(report: OutcomesReport) -> str:
    """The report as text: the figures per period, week and night, then the false saves and misses."""
    c = report.classifications
    span = " .. ".join(report.nights) if report.nights else "no alerts"
    lines = [f"outcomes {span}: {report.n_objects_seen} objects seen; classifications {c['path']} "
             f"({c['format']}, {c['rows']} rows, {c['rejected']} rejected)"]
    lines += [f"  rejected {reason}" for reason in c["rejected_first"][:5]]
    lines += ["", _HEADER, _row("all", report.overall)]
    lines += [_row(week, f) for week, f in report.by_week.items()]
    lines += [_row(night, f) for night, f in report.by_night.items()]
    lines += ["", "purity = saved bright / saved with a known outcome (uncl. = saved, not classified yet); "
              "delay = pass - BTS save, hours (negative: earlier)",
              f"bright objects in the file with no alert in the period (outside the feed): {report.n_bright_not_in_feed}; "
              f"bright position-only classifications with no object within {report.radius_arcsec:g} arcsec: "
              f"{report.n_position_unmatched}", ""]
    lines += _objects("false saves (the deciding alert)", report.of("false_save"))
    lines += _objects("misses (the highest-scoring alert)", report.of("missed"))
    if report.drift is not None:
        lines += ["", "input drift against the model's validation split (PSI / KS per feature):"]
        lines += [f"  {night}: " + (f"not judged ({d['skipped']})" if d.get("skipped")
                                    else f"FLAGGED {', '.join(d['flagged'])}" if d.get("flagged") else "passes")
                  for night, d in report.drift.items()]
    return "\n".join(lines)
