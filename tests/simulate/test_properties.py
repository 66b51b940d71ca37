"""Property tests of the simulator's building blocks."""

from __future__ import annotations

import gzip
import io

import numpy as np
from astropy.io import fits
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from brightscan.simulate import CLASSES, ClassMix, SurveyConfig
from brightscan.simulate.fitsgz import cutout_bytes
from brightscan.simulate.survey import assign_classes

finite = st.floats(-1e5, 1e5, allow_nan=False, width=32)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(32, 63), st.integers(32, 63)), elements=finite))
def test_cutouts_round_trip_through_astropy(image: np.ndarray) -> None:
    data = fits.getdata(io.BytesIO(gzip.decompress(cutout_bytes(image))))
    assert data.shape == image.shape and data.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(data, image)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 500), st.lists(st.floats(0, 1), min_size=len(CLASSES), max_size=len(CLASSES)))
def test_class_counts_are_exact(n: int, weights: list[float]) -> None:
    assume(sum(weights) > 0)  # a mix needs some weight
    mix = ClassMix(**dict(zip(CLASSES, weights)))
    classes = assign_classes(SurveyConfig(n_sources=n, class_mix=mix))
    counts = np.bincount(classes, minlength=len(CLASSES))
    assert counts.sum() == n
    assert np.all(np.abs(counts - n * np.array(mix.fractions())) < 1 + 1e-9)
