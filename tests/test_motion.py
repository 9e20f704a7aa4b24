from dataclasses import replace

import numpy as np
import pytest

from wflwv.data.videoset import VideoSet
from wflwv.synth import generate
from wflwv.synth.face import Expression, Identity, build_head
from wflwv.synth.motion import (
    REAL_FACES,
    angular_speeds,
    blinks,
    dominant_frequency,
    eye_closure,
    landmark_speeds,
    measure_clip,
    median_frequency,
    mouth_opening,
    smoothing_error,
    summarise,
)
from wflwv.filters import EMA
from wflwv.synth.scene import landmarks
from wflwv.synth.world import PRESETS, plan_video

FPS = 30.0
SECONDS = np.arange(150) / FPS


def test_landmark_speeds_are_in_inter_ocular_distances_per_second():
    face = np.random.default_rng(0).uniform(0, 100, (98, 2))
    face[72] = face[60] + [40.0, 0.0]  # outer eye corners 40 px apart
    points = face + np.arange(10)[:, None, None] * np.array([3.0, 4.0])  # 5 px a frame
    assert np.allclose(landmark_speeds(points, FPS), 5 * FPS / 40)


def test_median_frequency_of_a_sinusoid_is_its_frequency():
    for hz in (0.8, 4.0, 9.0):
        trajectory = np.stack([np.sin(2 * np.pi * hz * SECONDS), 0.5 * np.cos(2 * np.pi * hz * SECONDS)], axis=1)
        assert median_frequency(trajectory[:, None, :], FPS) == pytest.approx(hz, abs=0.25)
    fast_and_slow = np.sin(2 * np.pi * 6 * SECONDS) + np.sin(2 * np.pi * 1 * SECONDS)  # velocity power 36 : 1
    assert median_frequency(fast_and_slow, FPS) == pytest.approx(6, abs=0.25)


def test_dominant_frequency_finds_the_rhythm_over_a_slow_drift():
    opening = 1 + np.sin(2 * np.pi * 4.3 * SECONDS) ** 2 + 0.5 * SECONDS  # opens and closes at 8.6 Hz
    assert dominant_frequency(np.sin(2 * np.pi * 4.3 * SECONDS) + 0.5 * SECONDS, FPS) == pytest.approx(4.3, abs=0.1)
    assert dominant_frequency(opening, FPS, band=(1, 12)) == pytest.approx(8.6, abs=0.1)


def blink_curve(starts: list[int], n: int, closing: int = 3, shut: int = 2, opening: int = 6) -> np.ndarray:
    """Closure ramping to 1 over `closing` frames, shut for `shut`, back to 0 over `opening` frames."""
    t = np.arange(n)[:, None] - np.array(starts)[None]
    down, up = np.clip(t / closing, 0, 1), np.clip(1 - (t - closing - shut) / opening, 0, 1)
    return np.minimum(down, up).max(axis=1)


def test_blinks_of_known_duration_and_rate():
    closure = blink_curve([20, 80, 140, 200, 260], 300)  # 5 blinks in 10 s
    count, durations = blinks(closure, FPS, threshold=0.1)
    # above 0.1 from 0.3 frames into the closing ramp to 0.6 frames before the opening ramp's end
    assert count == 5 and np.allclose(durations, (3 + 2 + 6 - 0.3 - 0.6) / FPS)
    assert count / (len(closure) / FPS / 60) == pytest.approx(30)
    cut = blink_curve([-4, 100, 295], 300)  # one already under way, one not over by the end
    count, durations = blinks(cut, FPS, threshold=0.1)
    assert count == 2 and np.allclose(durations, [10.1 / FPS])


def test_eyelids_and_lips_of_the_template_give_closure_and_opening():
    identity = Identity()
    closing = np.array([0.0, 0.25, 0.5, 1.0])
    frontal = np.stack([build_head(identity, Expression(mouth_open=m, blink=(b, b))).template for b, m in zip(closing, [0, 0.2, 0.5, 1.0])])
    closure = eye_closure(frontal)
    assert closure[0] == 0 and np.allclose(closure[1:] / closing[1:], closure[-1])  # proportional to the lid parameter
    assert closure[-1] > 0.9
    assert np.allclose(mouth_opening(frontal), 75 * 0.32 * np.array([0, 0.2, 0.5, 1.0]))


def test_angular_speed_of_turns_nods_and_tilts():
    ramp = np.arange(20) * 2.0  # 2 degrees a frame: 60 degrees a second
    for axis in range(3):
        angles = np.zeros((20, 3))
        angles[:, axis] = ramp
        assert np.allclose(angular_speeds(angles, FPS), 60)
    still_head_tilted = np.tile([30.0, -10.0, 5.0], (5, 1))
    assert np.allclose(angular_speeds(still_head_tilted, FPS), 0, atol=1e-4)


def test_smoothing_error_is_the_filter_s_lag_behind_the_motion():
    face = np.random.default_rng(1).uniform(0, 100, (98, 2))
    face[72] = face[60] + [50.0, 0.0]
    assert smoothing_error(np.repeat(face[None], 30, axis=0), EMA(0.5), FPS) == 0  # a still face costs nothing
    moving = face + np.arange(400)[:, None, None] * np.array([2.0, 0.0])  # 2 px a frame
    # an EMA lags (1 - alpha) / alpha frames behind a ramp once settled: 1 frame, 2 px, 4% of 50 px
    assert smoothing_error(moving, EMA(0.5), FPS) == pytest.approx(4.0, rel=0.02)


def test_a_plan_has_the_landmarks_of_its_rendered_video(tmp_path):
    preset = replace(PRESETS["tiny"], train_stills=0, test_stills=0, videos=1, video_frames=(12, 14))
    generate(tmp_path, preset, seed=2, workers=1)
    truth = VideoSet(tmp_path / "videos").load("easy0000").landmarks
    clip, _ = plan_video(preset, 2, "easy", 0)
    assert np.allclose(truth, np.stack([landmarks(scene) for scene in clip.scenes]), atol=1e-3)


@pytest.fixture(scope="module")
def world_motion() -> dict[str, dict]:
    preset = replace(PRESETS["tiny"], videos=8)  # 40 s of video per split: enough blinks for a rate
    return {kind: summarise([measure_clip(plan_video(preset, 0, kind, index)[0], preset.fps) for index in range(preset.videos)]) for kind in ("hard", "easy")}


@pytest.mark.parametrize("kind", ["hard", "easy"])
def test_the_world_moves_like_real_faces(world_motion, kind):
    figures = world_motion[kind]
    for figure, (low, high) in REAL_FACES.items():
        assert low <= figures[figure][0] <= high, figure
    assert figures["talking videos (%)"][0] > 0


def test_easy_videos_talk_at_the_syllable_rate(world_motion):
    assert 3.5 <= world_motion["easy"]["talking mouth rhythm (Hz)"][0] <= 5.5  # hard ones laugh too, slower


def test_hard_videos_move_more_than_easy_ones(world_motion):
    for figure in ("head angular speed (deg/s)", "fastest head movement of a video (deg/s)", "nose speed (inter-ocular/s)"):
        assert world_motion["hard"][figure][0] > world_motion["easy"][figure][0], figure
