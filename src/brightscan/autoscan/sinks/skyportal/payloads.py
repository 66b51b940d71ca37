"""How SkyPortal wants what a save action carries about its alert.

From a save action's ``photometry`` and ``cutouts`` (:func:`brightscan.autoscan.actions.save_extras`)
the SkyPortal sink makes

* the ``PUT /api/photometry`` body (:func:`photometry_body`): flux space with an AB zero point
  of 23.9 (µJy), filters ``ztfg``/``ztfr``/``ztfi``, detections signed by ``isdiffpos`` with
  errors from ``sigmapsf``, upper limits with a null flux and an error of a fifth of the
  ``diffmaglim`` flux (it is a 5-sigma depth), the points without a valid ``diffmaglim``
  dropped — as the production bot (Kowalski) posts ZTF photometry;
* the ``new``/``ref``/``sub`` thumbnails (:func:`thumbnail_pngs`): PNGs, north up (ZTF stamps are
  stored south up), science and reference on a log stretch, difference linear.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from brightscan.autoscan.actions import THUMBNAIL_TYPES

__all__ = ["photometry_body", "thumbnail_pngs"]

log = logging.getLogger(__name__)

ZTF_FILTERS = {1: "ztfg", 2: "ztfr", 3: "ztfi"}
ZERO_POINT_AB = 23.9  # flux in µJy
MJD_OFFSET = 2400000.5
_UPSCALE = 3  # 63 px stamps -> 189 px PNGs (SkyPortal takes 16-500 px)


def _detected(isdiffpos: Any) -> float:
    return 1.0 if isdiffpos in (True, 1, "t", "T", "y", "Y", "1") else -1.0


def _point(epoch: Mapping[str, Any]) -> dict[str, Any] | None:
    """One SkyPortal photometry point, or None when the epoch is unusable."""
    band = ZTF_FILTERS.get(epoch.get("fid"))  # type: ignore[arg-type]
    limit = epoch.get("diffmaglim")
    if band is None or not isinstance(limit, (int, float)) or not limit > 0:
        return None
    point = {"mjd": float(epoch["jd"]) - MJD_OFFSET, "filter": band, "zp": ZERO_POINT_AB,
             "magsys": "ab", "ra": epoch.get("ra"), "dec": epoch.get("dec")}
    mag, err = epoch.get("magpsf"), epoch.get("sigmapsf")
    if isinstance(mag, (int, float)) and math.isfinite(mag) and isinstance(err, (int, float)):
        flux = _detected(epoch.get("isdiffpos")) * 10 ** (-0.4 * (mag - ZERO_POINT_AB))
        point.update(flux=flux, fluxerr=abs(err * flux * math.log(10) / 2.5))
    else:  # an upper limit: no flux, the 1-sigma error of a 5-sigma depth
        point.update(flux=None, fluxerr=10 ** (-0.4 * (limit - ZERO_POINT_AB)) / 5.0)
    return point


def photometry_body(obj_id: str, epochs: Sequence[Mapping[str, Any]], *, instrument_id: int,
                    group_ids: Sequence[int], stream_ids: Sequence[int] = ()) -> dict[str, Any] | None:
    """The ``PUT /api/photometry`` body (columns as lists), or None when no epoch is usable."""
    points: dict[tuple[Any, ...], dict[str, Any]] = {}
    for epoch in epochs:
        if epoch.get("jd") is None:
            continue
        key = (epoch["jd"], epoch.get("fid"), epoch.get("magpsf"))  # one epoch seen twice
        if key not in points and (point := _point(epoch)) is not None:
            points[key] = point
    if not points:
        return None
    rows = sorted(points.values(), key=lambda p: p["mjd"])
    body: dict[str, Any] = {"obj_id": obj_id, "instrument_id": instrument_id,
                            "group_ids": list(group_ids)}
    if stream_ids:
        body["stream_ids"] = list(stream_ids)
    for column in ("mjd", "flux", "fluxerr", "zp", "magsys", "filter", "ra", "dec"):
        body[column] = [row[column] for row in rows]
    return body


def thumbnail_pngs(obj_id: str, cutouts: Mapping[str, str]) -> dict[str, str]:
    """SkyPortal thumbnail type -> base64 PNG; a cutout that does not decode is left out (logged)."""
    from brightscan.preprocess.cutouts import decode_stamp
    from brightscan.preprocess.fits import StampDecodeError

    pngs = {}
    for name, ttype in THUMBNAIL_TYPES.items():
        if not cutouts.get(name):
            continue
        try:
            image = decode_stamp(base64.b64decode(cutouts[name]))
        except (StampDecodeError, ValueError) as exc:
            log.warning("%s: no %s thumbnail: %s", obj_id, ttype, exc)
            continue
        pngs[ttype] = base64.b64encode(_png(image, linear=name == "difference")).decode("ascii")
    return pngs


def _png(image: np.ndarray, *, linear: bool) -> bytes:
    """8-bit grey PNG of a stamp, north up, stretched between its 1st and 100th percentiles."""
    from PIL import Image  # matplotlib's dependency; imported only when a thumbnail is made

    img = np.flipud(np.asarray(image, dtype=np.float64))
    finite = np.isfinite(img)
    img = np.where(finite, img, np.median(img[finite]) if finite.any() else 0.0)
    if not linear:  # log stretch of the positive range, as scanners are used to
        img = np.log10(1.0 + 999.0 * (img - img.min()) / max(float(np.ptp(img)), 1e-30))
    low, high = np.percentile(img, [1.0, 100.0])
    scaled = np.clip((img - low) / max(high - low, 1e-30), 0.0, 1.0)
    pixels = np.kron((scaled * 255).astype(np.uint8), np.ones((_UPSCALE, _UPSCALE), np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # uint8 2-D: 8-bit grey
    return buffer.getvalue()
