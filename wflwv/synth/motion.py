"""The true motion of the synthetic videos, measured as studies of real faces measure theirs.

Each figure has one function on plain arrays, so that it can be checked on a trajectory whose answer
is known: landmark speeds and the spectrum of each face part's motion, blinks (duration and rate)
from the eyelids, the rhythm of a talking mouth, and the head's angular speed from its pose.
`measure_clip` applies them to a planned video: a plan's landmarks are those of its rendered video,
so the world is measured without rendering it. docs/synth.md sets the figures against real faces.
"""

from dataclasses import dataclass

import numpy as np

from wflwv.filters import TemporalFilter
from wflwv.landmarks import REGIONS, WFLW98
from wflwv.metrics import nme
from wflwv.schemes import distance
from wflwv.synth.face import build_head
from wflwv.synth.geometry import rotation
from wflwv.synth.scene import landmarks
from wflwv.synth.videos import Clip

EYELIDS = ((62, 66), (70, 74))  # middle of the upper and of the lower lid, each eye
INNER_LIPS = (90, 94)  # middle of the upper and of the lower inner lip
HEAD_UNIT_MM = 75.0  # face.py: a head unit is about 75 mm
BLINKING = 0.1  # an eye more than this fraction closed is blinking
MOUTH_BAND = (1.0, 10.0)  # Hz: where a talking mouth's rhythm is sought
TALKING = 0.6  # mm: a mouth whose opening varies by more than this (standard deviation) is talking
PADDING = 8  # spectra are zero-padded to this many times the signal's length, to place their peaks finely


def landmark_speeds(points: np.ndarray, fps: float) -> np.ndarray:
    """Speeds (frames - 1, landmarks) of landmarks (frames, landmarks, 2), in inter-ocular distances
    per second (the video's median distance between the outer eye corners)."""
    inter_ocular = np.median(distance(points, WFLW98, "interocular"))
    return np.linalg.norm(np.diff(points, axis=0), axis=-1) * fps / inter_ocular


def median_frequency(signal: np.ndarray, fps: float) -> float:
    """The frequency (Hz) below which half the power of the signal's velocity lies (a Hann-windowed
    periodogram of its frame-to-frame changes, summed over every axis after the first)."""
    velocity = np.diff(signal, axis=0).reshape(len(signal) - 1, -1)
    power = _power(velocity, len(velocity)).sum(axis=1)
    cumulative = np.cumsum(power)
    return float(np.interp(cumulative[-1] / 2, cumulative, np.fft.rfftfreq(len(velocity), 1 / fps)))


def dominant_frequency(signal: np.ndarray, fps: float, band: tuple[float, float] = MOUTH_BAND) -> float:
    """The frequency (Hz) of the highest peak of a 1-D signal's Hann-windowed, zero-padded periodogram within `band`."""
    n = PADDING * len(signal)
    power = _power(signal[:, None], n)[:, 0]
    frequencies = np.fft.rfftfreq(n, 1 / fps)
    inside = (frequencies >= band[0]) & (frequencies <= band[1])
    return float(frequencies[inside][power[inside].argmax()])


def _power(signal: np.ndarray, n: int) -> np.ndarray:
    """Periodogram (frequencies, columns) of the mean-removed, Hann-windowed columns, zero-padded to n samples."""
    windowed = (signal - signal.mean(axis=0)) * np.hanning(len(signal))[:, None]
    return np.abs(np.fft.rfft(windowed, n=n, axis=0)) ** 2


def blinks(closure: np.ndarray, fps: float, threshold: float = BLINKING) -> tuple[int, np.ndarray]:
    """Blinks in an eyelid closure curve (0 open, 1 shut): how many begin in it, and the durations (s)
    of those that also end in it, from the crossing of `threshold` on the way down to the crossing on
    the way up (crossings placed between frames by linear interpolation)."""
    above = closure > threshold
    edges = np.diff(above.astype(int))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # the frame before each crossing
    if above[0]:
        ends = ends[1:]  # the video opens mid-blink: not a blink that begins here
    complete = starts[: len(ends)]
    down = complete + (threshold - closure[complete]) / (closure[complete + 1] - closure[complete])
    up = ends + (closure[ends] - threshold) / (closure[ends] - closure[ends + 1])
    return len(starts), (up - down) / fps


def eye_closure(frontal: np.ndarray) -> np.ndarray:
    """Closure (frames,) of frontal (pose-free) landmarks (frames, 98, 2): one minus the lids' gap over
    its widest in the video, averaged over both eyes."""
    gaps = np.stack([frontal[:, lower, 1] - frontal[:, upper, 1] for upper, lower in EYELIDS], axis=1)
    return 1 - (gaps / gaps.max(axis=0)).mean(axis=1)


def mouth_opening(frontal: np.ndarray) -> np.ndarray:
    """The gap (frames,) between the inner lips, in mm, of frontal landmarks (frames, 98, 2) in head units."""
    return (frontal[:, INNER_LIPS[1], 1] - frontal[:, INNER_LIPS[0], 1]) * HEAD_UNIT_MM


def angular_speeds(angles: np.ndarray, fps: float) -> np.ndarray:
    """The head's angular speed (frames - 1,) in degrees per second, from (frames, 3) yaw, pitch and
    roll in degrees: the angle of the rotation between consecutive frames."""
    rotations = np.stack([rotation(*frame) for frame in angles])
    traces = np.einsum("tij,tij->t", rotations[:-1], rotations[1:])  # trace(R_t^T R_t+1)
    return np.degrees(np.arccos(np.clip((traces - 1) / 2, -1, 1))) * fps


def smoothing_error(points: np.ndarray, smoother: TemporalFilter, fps: float) -> float:
    """NME (x100) that a filter run online over the true landmarks (frames, 98, 2) adds: what smoothing
    costs a detector that is never wrong, the price of lagging behind the true motion."""
    return 100 * float(np.mean(nme(smoother.apply_online(points, fps), points)))


@dataclass(frozen=True)
class ClipMotion:
    """One video's true motion."""

    seconds: float
    speeds: dict[str, np.ndarray]  # face part -> every landmark speed of every frame, inter-ocular distances/s
    median_frequency: dict[str, float]  # face part -> Hz
    blinks: int
    blink_durations: np.ndarray  # s, the blinks that begin and end in the video
    talking: bool
    mouth_frequency: float  # Hz, the talking mouth's rhythm (nan when not talking)
    head_speeds: np.ndarray  # degrees/s, frame to frame
    smoothing_errors: dict[str, float]  # filter setting -> NME (x100) it adds to the true landmarks


def measure_clip(clip: Clip, fps: float, smoothers: tuple[TemporalFilter, ...] = ()) -> ClipMotion:
    points = np.stack([landmarks(scene) for scene in clip.scenes])
    frontal = np.stack([build_head(scene.identity, scene.expression).template for scene in clip.scenes])
    speeds = landmark_speeds(points, fps)
    count, durations = blinks(eye_closure(frontal), fps)
    opening = mouth_opening(frontal)
    talking = bool(opening.std() > TALKING)
    angles = np.array([(scene.pose.yaw, scene.pose.pitch, scene.pose.roll) for scene in clip.scenes])
    return ClipMotion(
        seconds=len(points) / fps,
        speeds={group: speeds[:, indices].ravel() for group, indices in REGIONS.items()},
        median_frequency={group: median_frequency(points[:, indices], fps) for group, indices in REGIONS.items()},
        blinks=count,
        blink_durations=durations,
        talking=talking,
        mouth_frequency=dominant_frequency(opening, fps) if talking else float("nan"),
        head_speeds=angular_speeds(angles, fps),
        smoothing_errors={smoother.describe(): smoothing_error(points, smoother, fps) for smoother in smoothers},
    )


# figure -> (low, high) as measured on real faces; docs/synth.md gives the studies
REAL_FACES = {
    "blink duration (ms)": (100.0, 400.0),
    "blinks per minute": (8.0, 32.5),
    "talking mouth rhythm (Hz)": (2.0, 7.0),
    "fastest head movement of a video (deg/s)": (50.0, 200.0),
}


def summarise(motions: list[ClipMotion]) -> dict[str, tuple[float, float, float]]:
    """The world's figures over some videos: figure -> (median, rate or mean, then the 10th and 90th
    percentile or nan)."""

    def spread(values) -> tuple[float, float, float]:
        values = np.asarray(values, dtype=float)
        values = values[~np.isnan(values)]
        if not len(values):
            return (np.nan,) * 3
        return tuple(float(v) for v in np.percentile(values, [50, 10, 90]))

    figures = {}
    for group in REGIONS:
        figures[f"{group} speed (inter-ocular/s)"] = spread(np.concatenate([m.speeds[group] for m in motions]))
        figures[f"{group} velocity median frequency (Hz)"] = spread([m.median_frequency[group] for m in motions])
    minutes = sum(m.seconds for m in motions) / 60
    figures["blink duration (ms)"] = spread(1000 * np.concatenate([m.blink_durations for m in motions]))
    figures["blinks per minute"] = (sum(m.blinks for m in motions) / minutes, np.nan, np.nan)
    figures["talking videos (%)"] = (100 * np.mean([m.talking for m in motions]), np.nan, np.nan)
    figures["talking mouth rhythm (Hz)"] = spread([m.mouth_frequency for m in motions])
    figures["head angular speed (deg/s)"] = spread(np.concatenate([m.head_speeds for m in motions]))
    figures["fastest head movement of a video (deg/s)"] = spread([m.head_speeds.max() for m in motions])
    for smoother in motions[0].smoothing_errors:
        errors = [m.smoothing_errors[smoother] for m in motions]
        figures[f"NME x100 that {smoother} adds to the truth"] = (float(np.mean(errors)), *spread(errors)[1:])
    return figures
