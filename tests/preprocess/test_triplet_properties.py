"""Properties of the triplet over generated stamps (astropy-encoded gzipped FITS): always (63, 63, 3),
finite, unit L2 norm per channel before padding, padded with 1e-9 — or a ``CutoutError``, exactly
when the stamp deserves one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from astropy.io import fits
from hypothesis.extra import numpy as hnp

from alerts.samples import CUTOUTS, production_stamp, stamp_bytes
from brightscan.alerts import Alert
from brightscan.errors import CutoutError
from brightscan.preprocess import PAD_VALUE, make_triplet
from brightscan.preprocess.cutouts import NORM_LIMIT, OVERFLOW_SENTINEL
from brightscan.preprocess.fits import decode_fits_image, gunzip

# No subnormal pixels: a channel whose norm is itself subnormal (< 1.2e-38) cannot be normalised
# to 1e-5 in float32, by us or by production's astropy/float32 path (Hypothesis found [1e-43,
# 1e-43] -> norm 1.004); real cutouts are counts, never that small.
PIXELS = st.one_of(
    st.floats(-1e4, 1e4, width=32, allow_subnormal=False),
    st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e38, -3e38, 1e-30, 1e19, 3.4e38]),
    st.floats(width=32, allow_subnormal=False),
)


@st.composite
def stamps(draw) -> np.ndarray:
    """A float32 stamp: mostly 2-D up to 66 px a side, sometimes 1-D or 3-D; edge values mixed in."""
    ndim = draw(st.sampled_from([2] * 8 + [1, 3]))
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=66 if ndim == 2 else 4))
    fill = draw(st.sampled_from(["random", "constant"]))
    if fill == "constant":
        return np.full(shape, draw(PIXELS), dtype=">f4")
    base = draw(hnp.arrays(np.float32, shape, elements=st.floats(-100, 100, width=32, allow_subnormal=False)))
    spots = draw(st.lists(st.tuples(st.integers(0, base.size - 1), PIXELS), max_size=6))
    flat = base.reshape(-1)
    for index, value in spots:
        flat[index] = value
    return base.astype(">f4")


def expected_reason(image: np.ndarray) -> str | None:
    """Why a stamp must be rejected (independently of the implementation), or None."""
    if image.ndim != 2:
        return "axes"
    if max(image.shape) > 63:
        return "larger than 63"
    clean = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf)
    if not np.isfinite(clean).all():
        return "infinite"
    if (np.abs(clean) >= np.float32(OVERFLOW_SENTINEL)).any():  # the threshold as float32 sees it
        return "overflow sentinel"
    norm = np.sqrt(np.sum(clean**2))
    if norm == 0:
        return "all zero"
    if norm >= NORM_LIMIT:
        return "too large"
    return None


def alert_of(images: list[np.ndarray]) -> Alert:
    cutouts = {field: stamp_bytes(image) for field, image in zip(CUTOUTS, images)}
    return Alert("ZTF24hypothz", 1, {"jd": 2460000.5}, (), cutouts, "generated")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=st.lists(stamps(), min_size=3, max_size=3))
def test_triplet_is_valid_or_rejected_for_the_right_reason(images):
    reasons = [expected_reason(image) for image in images]
    alert = alert_of(images)
    first_bad = next((r for r in reasons if r is not None), None)
    if first_bad is not None:
        with pytest.raises(CutoutError) as info:
            make_triplet(alert)
        assert first_bad in info.value.reason
        return
    triplet = make_triplet(alert)
    assert triplet.shape == (63, 63, 3) and triplet.dtype == np.float32
    assert np.isfinite(triplet).all()
    for channel, image in enumerate(images):
        height, width = image.shape
        inner = triplet[:height, :width, channel].astype(np.float64)
        assert abs(np.sqrt(np.sum(inner**2)) - 1.0) < 1e-5
        clean = np.nan_to_num(image.astype(np.float64))
        np.testing.assert_allclose(inner, clean / np.sqrt(np.sum(clean**2)), rtol=0, atol=1e-6)
        padded = triplet[:, :, channel].copy()
        padded[:height, :width] = PAD_VALUE
        assert np.all(padded == np.float32(PAD_VALUE))


@settings(max_examples=60, deadline=None)
@given(image=stamps())
def test_production_mode_equals_production_wherever_it_is_finite(image):
    assume(image.ndim == 2 and max(image.shape) <= 63)  # production only reads 2-D stamps up to 63 px
    data = stamp_bytes(image)
    oracle = production_stamp(data).astype(np.float32)
    alert = alert_of([image, image, image])
    try:
        triplet = make_triplet(alert, overflow="production")
    except CutoutError as exc:
        assert not np.isfinite(oracle).all(), exc  # production divides by zero: NaN/inf
        return
    finite = np.isfinite(oracle)
    np.testing.assert_allclose(triplet[:, :, 0][finite], oracle[finite], rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(image=stamps(), dtype=st.sampled_from([">f4", ">f8", ">i2", ">i4", "u1"]))
def test_fast_fits_decoder_equals_astropy(image, dtype):
    with np.errstate(invalid="ignore", over="ignore"):
        typed = np.nan_to_num(image, posinf=0, neginf=0).astype(dtype) if dtype[-2] in "iu" else image.astype(dtype)
    raw = gunzip(stamp_bytes(typed))
    with fits.open(io.BytesIO(raw)) as hdul:
        expected = hdul[0].data
    if typed.ndim != 2:
        with pytest.raises(ValueError, match="axes"):
            decode_fits_image(raw)
        return
    decoded = decode_fits_image(raw)
    assert decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)
