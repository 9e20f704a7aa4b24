import numpy as np
import pytest

from wflwv.uncertainty import bootstrap_interval, paired_difference, resampled_means, t_interval


def test_the_interval_of_a_mean_has_the_width_its_known_variance_gives():
    """The mean of n draws with standard deviation 2 has standard error 2 / sqrt(n): the 95% interval spans about +-1.96 of it."""
    values = np.random.default_rng(0).normal(5.0, 2.0, 400)
    interval = bootstrap_interval(values, resamples=4000)
    assert interval.estimate == pytest.approx(values.mean())
    assert interval.low < interval.estimate < interval.high
    assert (interval.high - interval.low) / 2 == pytest.approx(1.96 * 2.0 / np.sqrt(400), rel=0.1)
    assert bootstrap_interval(np.full(12, 3.0)).low == bootstrap_interval(np.full(12, 3.0)).high == 3.0


def test_the_interval_is_seeded_leaves_out_nan_units_and_handles_many_rows_at_once():
    values = np.random.default_rng(1).normal(0, 1, (3, 24))
    many = bootstrap_interval(values)
    for row, (low, high) in zip(values, zip(many.low, many.high)):
        one = bootstrap_interval(row)
        assert (one.low, one.high) == pytest.approx((low, high))
    assert bootstrap_interval(values[0], seed=1).low != many.low[0]
    with_nan = np.append(values[0], np.nan)
    assert bootstrap_interval(with_nan).estimate == pytest.approx(values[0].mean())
    assert np.isfinite(resampled_means(with_nan)).all()


def test_a_paired_difference_finds_a_small_consistent_gain_that_unpaired_intervals_cannot():
    """Units vary a lot (hard and easy videos) but method a is better than b by 0.2 on every one of them."""
    rng = np.random.default_rng(2)
    b = rng.uniform(2, 20, 12)
    a = b - 0.2 + rng.normal(0, 0.02, 12)
    ia, ib = bootstrap_interval(a), bootstrap_interval(b)
    assert ia.high > ib.low  # unpaired, the intervals overlap
    difference = paired_difference(a, b)
    assert difference.estimate == pytest.approx(np.mean(a - b))
    assert difference.high < 0 and difference.p_below_zero == 1.0
    assert paired_difference(b, a).low > 0 and paired_difference(b, a).p_below_zero == 0.0


def test_a_paired_difference_of_noise_is_uncertain_in_sign():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 200), rng.normal(0, 1, 200)
    difference = paired_difference(a, b)
    assert difference.low < 0 < difference.high and 0.02 < difference.p_below_zero < 0.98
    with pytest.raises(ValueError):
        paired_difference(a, b[:10])


def test_the_t_interval_over_seeds_covers_the_mean_as_often_as_its_level_says():
    rng = np.random.default_rng(0)
    draws = rng.normal(3.0, 2.0, (4000, 5))  # 4000 studies of 5 seeds
    interval = t_interval(draws)
    covered = (interval.low <= 3.0) & (3.0 <= interval.high)
    assert covered.mean() == pytest.approx(0.95, abs=0.01)
    np.testing.assert_allclose(interval.estimate, draws.mean(axis=1))
    single = t_interval(np.array([1.0, np.nan, np.nan]))
    assert single.estimate == 1.0 and np.isnan(single.low) and np.isnan(single.high)
