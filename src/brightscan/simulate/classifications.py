"""The simulated survey's later classifications, written like the BTS sample explorer's CSV.

``bts_explorer.csv`` holds what BTS would list some time after the survey: every supernova, AGN
and CV whose brightest alert reached :attr:`ClassificationConfig.list_mag`, classified after a
realistic delay (log-normal, counted from the scanners' save, else from the first alert), with
``type`` "-" for an object never classified (a share of each group) or classified only after the
file's date (``as_of_days`` after the last night). Columns and units as the explorer's:
``RA``/``Dec`` sexagesimal, ``peakt`` in JD - 2458000, ``peakmag`` the brightest alert's
magnitude (so "SN-like and ``peakmag`` <= 18.5" is exactly labels.csv's observed label, except
within 5e-5 mag of the limit), ``-`` for values the simulator has no model of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BTS_COLUMNS", "ClassificationConfig", "bts_row"]

#: The BTS sample explorer's CSV columns, in its order.
BTS_COLUMNS = ("ZTFID", "IAUID", "RA", "Dec", "peakt", "peakfilt", "peakmag", "peakabs", "duration",
               "rise", "fade", "type", "redshift", "b", "A_V")
_PEAKT_ZERO_JD = 2458000.0
_LISTED_CLASSES = {"bright_sn", "dim_sn", "agn", "cv"}
_H0 = 70.0  # km/s/Mpc, for the redshift of a simulated distance
_C_KMS = 299792.458


@dataclass(frozen=True)
class ClassificationConfig:
    """How BTS's later classifications of the simulated objects come about."""

    list_mag: float = 19.0  # objects whose brightest alert reached this are listed (BTS's explorer limit)
    delay_median_days: float = 3.0  # median delay from the save (else first alert) to the classification
    delay_sigma: float = 0.8  # log-normal width of that delay (natural log)
    never_bright: float = 0.05  # share of bright SNe (peak <= 18.5) never classified
    never_other: float = 0.30  # share of the fainter or non-SN listed objects never classified
    as_of_days: float = 14.0  # the file is taken this many days after the survey's last night


def bts_row(cls: str, label_row: dict[str, Any], save_jd: float | None, peak: tuple[float, float, int] | None,
            as_of_jd: float, rng: np.random.Generator,
            config: ClassificationConfig = ClassificationConfig()) -> dict[str, str] | None:
    """One explorer row for a simulated object, or None when BTS would not list it.

    Parameters
    ----------
    cls : str
        Simulator class (``bright_sn``, ``dim_sn``, ``agn``, ...).
    label_row : dict
        The object's labels.csv row (objectId, class, ra, dec, distance_mpc, first_alert_jd, ...).
    save_jd : float or None
        The scanners' save time.
    peak : (magpsf, jd, fid) or None
        The brightest alert.
    as_of_jd : float
        When the file is taken: later classifications read "-".
    rng : numpy.random.Generator
        The object's own stream (seeded by the survey seed and the object's index).
    """
    if cls not in _LISTED_CLASSES or peak is None or peak[0] > config.list_mag:
        return None
    mag, peak_jd, fid = peak
    bright = cls in ("bright_sn", "dim_sn") and mag <= 18.5
    never = rng.random() < (config.never_bright if bright else config.never_other)
    start = save_jd if save_jd is not None else float(label_row["first_alert_jd"])
    classified_jd = start + config.delay_median_days * math.exp(config.delay_sigma * rng.standard_normal())
    known = not never and classified_jd <= as_of_jd
    ra, dec = float(label_row["ra"]), float(label_row["dec"])
    distance = _float(label_row.get("distance_mpc"))
    is_sn = cls in ("bright_sn", "dim_sn")
    return {
        "ZTFID": label_row["objectId"], "IAUID": "-", "RA": _sexagesimal(ra / 15.0, signed=False),
        "Dec": _sexagesimal(dec, signed=True), "peakt": f"{peak_jd - _PEAKT_ZERO_JD:.2f}",
        "peakfilt": {1: "g", 2: "r"}.get(fid, "-"), "peakmag": f"{mag:.4f}",
        "peakabs": f"{mag - 5 * math.log10(distance * 1e5):.2f}" if is_sn and distance else "-",
        "duration": "-", "rise": _float_text(label_row.get("t_rise")), "fade": _float_text(label_row.get("t_fall")),
        "type": label_row["class"] if known else "-",  # the subtype as labels.csv writes it: "SN Ia", "AGN"
        "redshift": f"{_H0 * distance / _C_KMS:.4f}" if is_sn and distance and known else "-",
        "b": f"{_galactic_latitude(ra, dec):.3f}", "A_V": "-",
    }


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _float_text(value: Any) -> str:
    number = _float(value)
    return "-" if number is None else f"{number:.2f}"


def _sexagesimal(value: float, signed: bool) -> str:
    """``12:02:05.86`` (hours of RA) or ``+59:35:36.9`` (degrees of Dec), as the explorer writes them."""
    sign = "-" if value < 0 else "+"
    total = round(abs(value) * 3600, 2 if not signed else 1)
    whole, seconds = divmod(total, 60)
    hours, minutes = divmod(int(whole), 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:05.2f}" if not signed else f"{hours:02d}:{minutes:02d}:{seconds:04.1f}"
    return f"{sign}{text}" if signed else text


def _galactic_latitude(ra: float, dec: float) -> float:
    """Galactic latitude (degrees) of ICRS coordinates (J2000 pole at 192.85948, 27.12825)."""
    ra_p, dec_p = math.radians(192.85948), math.radians(27.12825)
    r, d = math.radians(ra), math.radians(dec)
    sin_b = math.sin(d) * math.sin(dec_p) + math.cos(d) * math.cos(dec_p) * math.cos(r - ra_p)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_b))))
