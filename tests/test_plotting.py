"""Plot helpers that compute something: densities recovered from stored quantiles."""

from statistics import NormalDist

import numpy as np

from bnlib.book.plotting import density_from_quantiles
from bnlib.probes.activations import QUANTILE_LEVELS

LEVELS = np.asarray(QUANTILE_LEVELS)


def test_uniform_quantiles_give_a_flat_density():
    x = np.linspace(-0.5, 1.5, 801)
    density = density_from_quantiles(LEVELS.copy(), LEVELS, x, blur=0)
    inside = (x > 0.05) & (x < 0.95)
    np.testing.assert_allclose(density[inside], 1.0, atol=1e-9)
    np.testing.assert_allclose(density[(x < -0.01) | (x > 1.01)], 0, atol=1e-12)


def test_normal_quantiles_give_a_normal_density():
    q = np.array([NormalDist().inv_cdf(p) for p in np.clip(LEVELS, 1e-4, 1 - 1e-4)])
    x = np.linspace(-5, 5, 2001)
    density = density_from_quantiles(q, LEVELS, x)
    assert abs(np.trapezoid(density, x) - 1) < 0.01
    assert abs(np.trapezoid(x * density, x)) < 0.01
    assert abs(density.max() - NormalDist().pdf(0)) < 0.03


def test_a_point_mass_does_not_break_it():
    density = density_from_quantiles(np.zeros(41), LEVELS, np.linspace(-1, 1, 101))
    assert np.isfinite(density).all()
