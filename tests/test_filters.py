import numpy as np
import pytest
from OneEuroFilter import OneEuroFilter

from wflwv.filters import EMA, FILTERS, Kalman, OneEuro, SavitzkyGolay, sweep


def run_stream(filter_, signal: np.ndarray, fps: float = 30.0) -> np.ndarray:
    stream = filter_.stream(fps)
    return np.stack([stream.step(frame) for frame in signal])


def random_walk(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).normal(0, 3, size=shape), axis=0)


def test_ema_by_hand():
    signal = np.array([0.0, 4.0, 8.0, 0.0])
    expected = [0.0, 2.0, 5.0, 2.5]
    assert np.allclose(EMA(0.5).apply(signal, fps=30), expected)
    assert np.allclose(run_stream(EMA(0.5), signal), expected)


@pytest.mark.parametrize("filter_", [EMA(0.3), OneEuro(1.0, beta=0.05)])
def test_causal_filters_give_the_same_result_online_and_offline(filter_):
    signal = random_walk((50, 98, 2))
    offline = filter_.apply(signal, fps=25)
    assert offline.shape == signal.shape
    assert np.allclose(run_stream(filter_, signal, fps=25), offline, rtol=0, atol=1e-9)


def test_reset_starts_the_stream_afresh():
    signal = random_walk((20, 98, 2))
    for filter_ in [EMA(0.3), OneEuro(1.0, beta=0.05), SavitzkyGolay(7, 2), Kalman(1e4, 4.0)]:
        stream = filter_.stream(30)
        first = [stream.step(frame) for frame in signal]
        stream.reset()
        again = [stream.step(frame) for frame in signal]
        assert np.allclose(first, again) and np.array_equal(again[0], signal[0])


@pytest.mark.parametrize("min_cutoff, beta, d_cutoff, fps", [(1.0, 0.0, 1.0, 30.0), (0.5, 0.05, 1.0, 25.0), (2.0, 0.5, 3.0, 60.0)])
def test_one_euro_matches_the_reference_package(min_cutoff, beta, d_cutoff, fps):
    signal = random_walk((60, 4, 2)) + np.random.default_rng(1).normal(0, 1, size=(60, 4, 2))
    expected = np.empty_like(signal)
    for coordinate in np.ndindex(signal.shape[1:]):
        reference = OneEuroFilter(fps, min_cutoff, beta, d_cutoff)
        for frame, value in enumerate(signal[(slice(None), *coordinate)]):
            expected[(frame, *coordinate)] = reference(value, frame / fps)
    assert np.allclose(OneEuro(min_cutoff, beta, d_cutoff).apply(signal, fps), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("window, order", [(7, 2), (11, 3), (5, 1)])
def test_savgol_keeps_a_polynomial_of_degree_up_to_its_order(window, order):
    time = np.arange(40) / 30
    coefficients = np.random.default_rng(0).normal(0, 50, size=(order + 1, 98, 2))
    signal = sum(c * time[:, None, None] ** k for k, c in enumerate(coefficients))
    filter_ = SavitzkyGolay(window, order)
    assert np.allclose(filter_.apply(signal, 30), signal, atol=1e-8)
    assert np.allclose(run_stream(filter_, signal), signal, atol=1e-8)


def test_savgol_line_fits_by_hand():
    signal = np.array([0.0, 6.0, 0.0, 12.0, 6.0])
    # centred 3-point line fit: the mean of three neighbours inside; at the ends the first and last fits
    assert np.allclose(SavitzkyGolay(3, 1).apply(signal, 30), [2.0, 2.0, 6.0, 6.0, 9.0])
    # causal line fit through the last 3 frames, read at the newest: -x1/6 + x2/3 + 5 x3/6;
    # the first frame passes, the second lies on the line through the first two
    assert np.allclose(run_stream(SavitzkyGolay(3, 1), signal), [0.0, 6.0, 2.0, 9.0, 9.0])


def test_savgol_fits_the_whole_of_a_signal_shorter_than_its_window():
    # least-squares line through (0, 0), (1, 2), (2, 0), (3, 2): 1 + 0.4 (t - 1.5)
    assert np.allclose(SavitzkyGolay(7, 1).apply(np.array([0.0, 2.0, 0.0, 2.0]), 30), [0.4, 0.8, 1.2, 1.6])


def test_kalman_first_steps_by_hand():
    # fps 1: transition [[1, 1], [0, 1]], process covariance 3 [[1/3, 1/2], [1/2, 1]], measurement variance 1.
    # Frame 1 sets the position 0, velocity 0, covariance diag(1, 1); the prediction's covariance is
    # [[3, 2.5], [2.5, 4]], so the gain is (0.75, 0.625) and measuring 4 gives position 3, velocity 2.5.
    kalman = Kalman(process_noise=3.0, measurement_noise=1.0)
    assert np.allclose(run_stream(kalman, np.array([0.0, 4.0]), fps=1), [0.0, 3.0])
    # Smoothing back: gain diag(1, 1) F^T [[3, 2.5], [2.5, 4]]^-1 = [[4, -2.5], [1.5, 0.5]] / 5.75 applied to
    # (3, 2.5) - (0, 0) moves frame 1 to position 1.
    assert np.allclose(kalman.apply(np.array([0.0, 4.0]), fps=1), [1.0, 3.0])


def test_kalman_holds_a_constant_and_converges_after_a_step():
    kalman = Kalman(process_noise=1e3, measurement_noise=4.0)
    constant = np.full((30, 98, 2), 7.5)
    assert np.allclose(run_stream(kalman, constant), 7.5) and np.allclose(kalman.apply(constant, 30), 7.5)
    step = np.concatenate([np.zeros((5, 3)), np.full((120, 3), 10.0)])
    assert np.allclose(run_stream(kalman, step)[-1], 10.0, atol=1e-3)


def test_kalman_smoother_ends_where_the_filter_ends():
    signal = random_walk((40, 98, 2))
    kalman = Kalman(process_noise=1e4, measurement_noise=4.0)
    smoothed, filtered = kalman.apply(signal, 30), run_stream(kalman, signal)
    assert smoothed.shape == signal.shape
    assert np.allclose(smoothed[-1], filtered[-1]) and not np.allclose(smoothed[:-1], filtered[:-1])


@pytest.mark.parametrize("name", list(FILTERS))
def test_sweeps_go_from_light_to_heavy_smoothing(name):
    filters = sweep(name)
    assert 4 <= len(filters) <= 6 and all(type(f) is FILTERS[name] for f in filters)
    labels = [f.describe() for f in filters]
    assert len(set(labels)) == len(labels) and all(label.startswith(f"{name}(") for label in labels)
    noise = np.random.default_rng(0).normal(size=(200, 98, 2))
    for outputs in ([f.apply(noise, 30) for f in filters], [run_stream(f, noise) for f in filters]):
        jitter = [np.std(np.diff(output, axis=0)) for output in outputs]
        assert all(heavier < lighter for lighter, heavier in zip(jitter, jitter[1:]))


def test_labels():
    assert EMA(0.5).describe() == "ema(alpha=0.5)"
    assert SavitzkyGolay(9, 2).describe() == "savgol(window=9, order=2)"
    assert OneEuro(1.0, 0.05).describe() == "one_euro(min_cutoff=1, beta=0.05, d_cutoff=1)"


@pytest.mark.parametrize(
    "make",
    [
        lambda: EMA(0.0),
        lambda: EMA(1.5),
        lambda: OneEuro(0.0, 1.0),
        lambda: SavitzkyGolay(4, 2),
        lambda: SavitzkyGolay(5, 5),
        lambda: Kalman(0.0, 1.0),
        lambda: sweep("median"),
        lambda: EMA(0.5).apply(np.ones(3), fps=0),
        lambda: EMA(0.5).apply(np.ones((0, 98, 2)), fps=30),
    ],
)
def test_bad_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()
