"""Every route through a fit gives the labels recorded before the thin-estimator refactor (same seeds)."""

import numpy as np
import pytest

from .reference_fits import REFERENCE_FILE, cases, fit_case

CASE_NAMES = [
    "digits_heads", "digits_whole_network", "digits_heads_selflabel", "features_mlp", "features_normalized",
    "folder_decoded", "folder_streamed",
]


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE_FILE)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_same_labels_as_recorded(name, reference, tmp_path):
    X, params = cases(tmp_path / "images")[name]
    figures = fit_case(X, params)
    np.testing.assert_array_equal(figures["labels"], reference[f"{name}/labels"])
    np.testing.assert_array_equal(figures["predict"], reference[f"{name}/predict"])
    np.testing.assert_allclose(figures["head_losses"], reference[f"{name}/head_losses"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(figures["transform"], reference[f"{name}/transform"], rtol=1e-4, atol=1e-5)
