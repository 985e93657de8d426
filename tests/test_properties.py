"""Property-based tests of input handling: any array gets a fit or a clear ValueError, and is never modified."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sklearn_scan import SCANClusterer

QUICK = dict(n_clusters=2, n_neighbors=2, n_heads=2, pretext_epochs=1, scan_epochs=1, batch_size=8, random_state=0)

DTYPES = st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_, np.complex64])
SHAPES = hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=9)
VALUES = {
    "float": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "int": st.integers(-300, 300),
}


def images():
    """Arrays of images as users pass them: (n, side, side[, 1 or 3]), uint8 or float in [0, 1]."""
    shapes = st.tuples(st.integers(4, 12), st.integers(4, 8), st.sampled_from([(), (1,), (3,)]))
    return st.tuples(shapes, st.sampled_from([np.uint8, np.float32])).flatmap(lambda spec: hnp.arrays(
        spec[1], (spec[0][0], spec[0][1], spec[0][1], *spec[0][2]),
        elements=st.integers(0, 255) if spec[1] is np.uint8 else st.floats(0, 1, width=32)))


def arrays():
    """Any array: most shapes, dtypes and values are not valid input, and some are."""

    def of(dtype):
        if np.issubdtype(dtype, np.complexfloating):
            elements = st.complex_numbers(max_magnitude=2, width=64)
        elif np.issubdtype(dtype, np.floating):
            elements = st.one_of(VALUES["float"], st.floats(0, 1, width=32))
        elif dtype is np.bool_:
            elements = st.booleans()
        else:
            info = np.iinfo(dtype)
            elements = st.one_of(st.integers(max(info.min, -300), min(info.max, 300)), st.integers(0, 255))
        return hnp.arrays(dtype, SHAPES, elements=elements)

    return st.one_of(DTYPES.flatmap(of), images())


def fit_or_value_error(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return model.fit(X)
        except ValueError as error:
            assert str(error), "a ValueError without a message"
            return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=arrays())
def test_any_array_gets_a_fit_or_a_value_error_and_is_not_modified(X):
    before = X.copy()
    model = fit_or_value_error(SCANClusterer(**QUICK), X)
    np.testing.assert_array_equal(X, before)
    if model is not None:
        assert model.labels_.shape == (len(X),)
        assert set(np.unique(model.labels_)) <= {0, 1}


@settings(max_examples=25, deadline=None)
@given(X=arrays())
def test_any_array_at_predict_gets_labels_or_a_value_error(fitted_on_images, X):
    before = X.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            labels = fitted_on_images.predict(X)
        except ValueError as error:
            assert str(error)
        else:
            assert labels.shape == (len(X),)
    np.testing.assert_array_equal(X, before)


@pytest.fixture(scope="module")
def fitted_on_images():
    rng = np.random.default_rng(0)
    return SCANClusterer(**QUICK).fit(rng.integers(0, 256, size=(20, 6, 6), dtype=np.uint8))
