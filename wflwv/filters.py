"""Temporal smoothing of landmark trajectories, the baselines that stabilise still-image models on video.

A filter is a frozen dataclass of its parameters with two forms:
`stream(fps)` is online and causal (`step(x)` per frame, any shape; `reset()`), and
`apply(signal, fps)` is offline over a whole (frames, ...) array and returns the same shape.
The causal filters (EMA, One Euro) give the same result in both forms; Savitzky-Golay and Kalman
use the whole signal offline (a centred window, the Rauch-Tung-Striebel smoother).
"""

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, fields
from typing import ClassVar, Protocol

import numpy as np
from scipy.signal import lfilter, savgol_coeffs, savgol_filter


class Stream(Protocol):
    def step(self, x: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


def _signal(signal: np.ndarray) -> np.ndarray:
    signal = np.asarray(signal, dtype=float)
    if signal.ndim == 0 or len(signal) == 0:
        raise ValueError(f"signal has shape {signal.shape}, expected (frames, ...) with at least one frame")
    return signal


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")


@dataclass(frozen=True)
class TemporalFilter(ABC):
    """The parameters of a smoothing filter; a subclass defines its online form and, if it differs, its offline form."""

    name: ClassVar[str]

    @abstractmethod
    def stream(self, fps: float) -> Stream:
        """A fresh online filter for a signal sampled at `fps` frames per second."""

    def apply(self, signal: np.ndarray, fps: float) -> np.ndarray:
        """Filter a whole (frames, ...) signal; by default, run the online form over it."""
        return self.apply_online(signal, fps)

    def apply_online(self, signal: np.ndarray, fps: float) -> np.ndarray:
        """The online form run over a whole (frames, ...) signal: each output sees only the frames up to its own."""
        stream = self.stream(fps)
        return np.stack([stream.step(frame) for frame in _signal(signal)])

    def describe(self) -> str:
        """A short label such as "ema(alpha=0.5)"."""
        parameters = ", ".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self))
        return f"{self.name}({parameters})"


class _EMAStream:
    def __init__(self, alpha: float):
        self.alpha = alpha
        self.reset()

    def reset(self) -> None:
        self.state = None

    def step(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        self.state = x.copy() if self.state is None else self.alpha * x + (1 - self.alpha) * self.state
        return self.state


@dataclass(frozen=True)
class EMA(TemporalFilter):
    """Exponential moving average per frame: y_1 = x_1, y_t = alpha x_t + (1 - alpha) y_(t-1)."""

    alpha: float
    name: ClassVar[str] = "ema"

    def __post_init__(self):
        if not 0 < self.alpha <= 1:
            raise ValueError(f"EMA alpha must be in (0, 1], got {self.alpha}")

    def stream(self, fps: float) -> Stream:
        _check_fps(fps)
        return _EMAStream(self.alpha)

    def apply(self, signal: np.ndarray, fps: float) -> np.ndarray:
        _check_fps(fps)
        signal = _signal(signal)
        # The initial condition (1 - alpha) x_1 makes the first output x_1.
        initial = (1 - self.alpha) * signal[:1]
        smoothed, _ = lfilter([self.alpha], [1.0, self.alpha - 1.0], signal, axis=0, zi=initial)
        return smoothed


def _smoothing_factor(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    """Weight of the new sample in a first-order low-pass filter with this cutoff frequency (Hz)."""
    time_constant = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + time_constant * fps)


class _OneEuroStream:
    def __init__(self, params: "OneEuro", fps: float):
        self.params = params
        self.fps = fps
        self.reset()

    def reset(self) -> None:
        self.value = None
        self.speed = None

    def step(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return self.value
        # As in the reference implementation, the speed is measured from the previous filtered value.
        raw_speed = (x - self.value) * self.fps
        speed_weight = _smoothing_factor(self.params.d_cutoff, self.fps)
        self.speed = speed_weight * raw_speed + (1 - speed_weight) * self.speed
        weight = _smoothing_factor(self.params.min_cutoff + self.params.beta * np.abs(self.speed), self.fps)
        self.value = weight * x + (1 - weight) * self.value
        return self.value


@dataclass(frozen=True)
class OneEuro(TemporalFilter):
    """The One Euro filter (Casiez et al., CHI 2012): a low-pass whose cutoff (Hz) rises with the speed.

    `beta` multiplies the speed in signal units per second (pixels/s for landmarks in pixels).
    """

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0
    name: ClassVar[str] = "one_euro"

    def __post_init__(self):
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f"One Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {self}")

    def stream(self, fps: float) -> Stream:
        _check_fps(fps)
        return _OneEuroStream(self, fps)


def _fitted_window(window: int, order: int, available: int) -> tuple[int, int]:
    """Window and polynomial order usable when only `available` frames exist."""
    window = min(window, available)
    return window, min(order, window - 1)


class _CausalSavitzkyGolayStream:
    def __init__(self, window: int, order: int):
        # weights[n] evaluates, at the newest frame, the least-squares polynomial through the last n frames.
        self.weights = {n: savgol_coeffs(*_fitted_window(window, order, n), pos=n - 1, use="dot") for n in range(1, window + 1)}
        self.history = deque(maxlen=window)

    def reset(self) -> None:
        self.history.clear()

    def step(self, x: np.ndarray) -> np.ndarray:
        self.history.append(np.asarray(x, dtype=float))
        return np.tensordot(self.weights[len(self.history)], np.stack(self.history), axes=1)


@dataclass(frozen=True)
class SavitzkyGolay(TemporalFilter):
    """Least-squares polynomial of degree `order` over a window of `window` frames.

    Offline: centred window (scipy's savgol_filter, mode "interp": the edges take the first and last
    window's fit). Online: causal, the fit of the last `window` frames evaluated at the newest one.
    With fewer frames than `window` (a short video, the start of a stream) all of them are fitted,
    with the order lowered to at most their number minus one.
    """

    window: int
    order: int
    name: ClassVar[str] = "savgol"

    def __post_init__(self):
        if not (self.window >= 1 and self.window % 2 == 1 and 0 <= self.order < self.window):
            raise ValueError(f"Savitzky-Golay needs an odd window >= 1 and 0 <= order < window, got {self}")

    def stream(self, fps: float) -> Stream:
        _check_fps(fps)
        return _CausalSavitzkyGolayStream(self.window, self.order)

    def apply(self, signal: np.ndarray, fps: float) -> np.ndarray:
        _check_fps(fps)
        signal = _signal(signal)
        window, order = _fitted_window(self.window, self.order, len(signal))
        return savgol_filter(signal, window, order, axis=0, mode="interp")


class _KalmanStream:
    """Constant-velocity Kalman filter, one per coordinate.

    All coordinates share the noise model and start together, so they share one 2x2 covariance and gain;
    only the means (position, velocity) are per coordinate, stacked as an array (2, ...).
    """

    def __init__(self, params: "Kalman", fps: float):
        dt = 1.0 / fps
        self.transition = np.array([[1.0, dt], [0.0, 1.0]])
        # White-noise acceleration of spectral density `process_noise`, integrated over one frame.
        self.process_cov = params.process_noise * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        self.measurement_var = params.measurement_noise
        # The first frame fixes the position; the velocity starts at 0, as uncertain as one measurement per frame.
        self.initial_cov = np.diag([params.measurement_noise, params.measurement_noise / dt**2])
        self.reset()

    def reset(self) -> None:
        self.mean = None
        self.cov = None

    def predicted(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.tensordot(self.transition, mean, axes=1), self.transition @ cov @ self.transition.T + self.process_cov

    def step(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.mean is None:
            self.mean, self.cov = np.stack([x, np.zeros_like(x)]), self.initial_cov
            return x.copy()
        mean, cov = self.predicted(self.mean, self.cov)
        gain = cov[:, 0] / (cov[0, 0] + self.measurement_var)
        self.mean = mean + np.multiply.outer(gain, x - mean[0])
        self.cov = cov - np.outer(gain, cov[0])
        return self.mean[0].copy()


@dataclass(frozen=True)
class Kalman(TemporalFilter):
    """Constant-velocity Kalman filter per coordinate; offline, the Rauch-Tung-Striebel smoother.

    `process_noise`: spectral density of the white-noise acceleration (units^2/s^3);
    `measurement_noise`: variance of a measurement (units^2). Smaller process noise smooths more.
    """

    process_noise: float
    measurement_noise: float
    name: ClassVar[str] = "kalman"

    def __post_init__(self):
        if not (self.process_noise > 0 and self.measurement_noise > 0):
            raise ValueError(f"Kalman noises must be positive, got {self}")

    def stream(self, fps: float) -> "_KalmanStream":
        _check_fps(fps)
        return _KalmanStream(self, fps)

    def apply(self, signal: np.ndarray, fps: float) -> np.ndarray:
        stream = self.stream(fps)
        filtered = []
        for frame in _signal(signal):
            stream.step(frame)
            filtered.append((stream.mean, stream.cov))
        mean = filtered[-1][0]
        smoothed = [mean[0]]
        for filtered_mean, filtered_cov in reversed(filtered[:-1]):
            next_mean, next_cov = stream.predicted(filtered_mean, filtered_cov)
            gain = filtered_cov @ stream.transition.T @ np.linalg.inv(next_cov)
            mean = filtered_mean + np.tensordot(gain, mean - next_mean, axes=1)
            smoothed.append(mean[0])
        return np.stack(smoothed[::-1])


FILTERS: dict[str, type[TemporalFilter]] = {f.name: f for f in (EMA, OneEuro, SavitzkyGolay, Kalman)}

_SWEEPS = {
    "ema": [EMA(alpha) for alpha in (0.8, 0.6, 0.4, 0.3, 0.2)],
    "one_euro": [OneEuro(min_cutoff, beta=0.05) for min_cutoff in (8.0, 4.0, 2.0, 1.0, 0.5)],
    "savgol": [SavitzkyGolay(window, order=2) for window in (5, 7, 11, 15, 21)],
    "kalman": [Kalman(process_noise, measurement_noise=4.0) for process_noise in (1e6, 1e5, 1e4, 1e3, 1e2)],
}


def sweep(name: str) -> list[TemporalFilter]:
    """Default settings of filter `name`, from light to heavy smoothing."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}, expected one of {list(FILTERS)}")
    return list(_SWEEPS[name])
