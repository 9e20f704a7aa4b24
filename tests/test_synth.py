from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wflwv.data.video import read_video
from wflwv.data.videoset import VideoSet
from wflwv.data.wflw import SUBSETS, WflwStills
from wflwv.errors import WflwvError
from wflwv.landmarks import flip_horizontally
from wflwv.synth import Preset, generate
from wflwv.synth.face import Expression, build_head
from wflwv.synth.geometry import cast
from wflwv.synth.optics import Optics, motion_kernel
from wflwv.synth.props import Occluder
from wflwv.synth.render import Light
from wflwv.synth.sampling import attributes
from wflwv.synth.scene import Pose, Scene, Shot, face_box, landmarks, render
from wflwv.synth.texture import Look, curve
from wflwv.synth.videos import plan_clip, shoot, smooth_curve

CLEAN = Scene(
    look=Look(skin=(0.9, 0.75, 0.65), hair=(0.1, 0.07, 0.05), lips=(0.8, 0.25, 0.3)),
    pose=Pose(scale=60, centre=(128, 100)),
    light=Light(azimuth=0, elevation=20, strength=0.6, ambient=0.45),
    optics=Optics(noise=0.0),
)
GREY = np.full((256, 256, 3), 0.5, np.float32)
SMALL = Preset(6, 6, 1, (160, 176), (90, 110), (256, 256), (100, 120), video_frames=(12, 16))


def colour_at(image: np.ndarray, point: np.ndarray) -> np.ndarray:
    x, y = np.round(point).astype(int)
    return image[y, x].astype(float) / 255


@pytest.mark.parametrize("yaw", [0, 30])
def test_features_are_painted_at_their_landmarks(yaw):
    shot = render(replace(CLEAN, pose=replace(CLEAN.pose, yaw=yaw)), GREY, np.random.default_rng(0))
    points, skin = shot.landmarks, colour_at(shot.image, shot.landmarks[54])  # the nose tip is bare skin
    for pupil, outer in ((96, 60), (97, 72)):
        assert colour_at(shot.image, points[pupil]).mean() < 0.2 < skin.mean() - 0.4
        white = colour_at(shot.image, 0.4 * points[pupil] + 0.6 * points[outer])  # beside the iris
        assert white[0] - white[2] < 0.5 * (skin[0] - skin[2])
    for outer, inner in ((79, 90), (85, 94)):  # the middle of each lip is lip red
        lip = colour_at(shot.image, (points[outer] + points[inner]) / 2)
        assert lip[0] / lip[1] > 2.5 > 1.5 > skin[0] / skin[1]
    for upper, lower in ((35, 40), (44, 49)):  # the brows are dark hair
        assert colour_at(shot.image, (points[upper] + points[lower]) / 2).mean() < 0.6 * skin.mean()


def test_mirrored_parameters_mirror_the_landmarks():
    scene = replace(
        CLEAN,
        expression=Expression(mouth_open=0.3, smile=0.5, blink=(0.8, 0.1), brow_raise=0.3, gaze=(0.4, -0.2)),
        pose=Pose(yaw=25, pitch=8, roll=12, scale=55, centre=(120.0, 110.0)),
    )
    mirror = replace(scene, expression=scene.expression.mirrored(), pose=replace(scene.pose, yaw=-25, roll=-12, centre=(255 - 120.0, 110.0)))
    assert np.allclose(landmarks(mirror), flip_horizontally(landmarks(scene), 256), atol=1e-9)


def test_the_far_jaw_is_hidden_at_large_yaw_but_keeps_its_true_projection():
    scene = replace(CLEAN, pose=replace(CLEAN.pose, yaw=70))
    head = build_head(scene.identity, scene.expression)
    camera = scene.pose.camera()
    pixels, depth = camera.project(head.landmarks), camera.depth(head.landmarks)
    ray_x, ray_y = camera.rays(pixels[:, 0], pixels[:, 1])
    nearest_surface = cast(list(head.parts.values()), camera, ray_x, ray_y)[0].min(axis=0)
    assert np.all(nearest_surface[24:33] < depth[24:33] - 0.1)  # the nose turns right: the right jaw is behind the face
    assert np.allclose(nearest_surface[0:9], depth[0:9], atol=1e-4)  # the near jaw is the surface itself
    assert np.allclose(pixels, landmarks(scene))


def test_face_box_spans_the_landmarks_and_the_forehead():
    points = np.zeros((98, 2))
    points[:, 0] = np.linspace(10, 50, 98)
    points[:, 1] = np.linspace(20, 120, 98)
    assert np.allclose(face_box(points), [10, 0, 50, 120])  # 20 % of the height (100) above the top


def test_curves_pass_through_their_points():
    points = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [4.0, 4.0]])
    assert np.allclose(curve(points, samples=5)[::5], points)


def test_motion_kernel_is_a_normalised_line_of_the_right_length():
    kernel = motion_kernel(9.0, 0.0)
    assert kernel.sum() == pytest.approx(1.0)
    rows = np.flatnonzero(kernel.sum(axis=1) > 1e-6)
    cols = np.flatnonzero(kernel.sum(axis=0) > 1e-6)
    assert len(rows) == 1 and 9 <= len(cols) <= 11


def test_smooth_curves_have_unit_deviation_and_small_steps():
    curve_ = smooth_curve(np.random.default_rng(1), 400, 20.0)
    assert curve_.std() == pytest.approx(1.0) and abs(curve_.mean()) < 1e-9
    assert np.abs(np.diff(curve_)).max() < 0.2  # white noise of unit deviation would jump by about 1


def flags(scene: Scene, covered: int = 0) -> list[int]:
    points = landmarks(scene)
    return attributes(scene, Shot(np.zeros((8, 8, 3), np.uint8), points, np.arange(98) < covered)).tolist()


def test_attribute_flags_follow_the_generator_parameters():
    face = 2.0 * CLEAN.pose.scale  # about the face box side, in pixels
    assert flags(CLEAN) == [0, 0, 0, 0, 0, 0]
    assert flags(replace(CLEAN, pose=replace(CLEAN.pose, yaw=-40))) == [1, 0, 0, 0, 0, 0]
    assert flags(replace(CLEAN, pose=replace(CLEAN.pose, yaw=20, roll=10))) == [0, 0, 0, 0, 0, 0]
    assert flags(replace(CLEAN, expression=Expression(mouth_open=0.7))) == [0, 1, 0, 0, 0, 0]
    assert flags(replace(CLEAN, optics=Optics(exposure=0.3))) == [0, 0, 1, 0, 0, 0]
    assert flags(replace(CLEAN, light=Light(azimuth=80, ambient=0.1))) == [0, 0, 1, 0, 0, 0]
    assert flags(replace(CLEAN, look=replace(CLEAN.look, makeup=0.8))) == [0, 0, 0, 1, 0, 0]
    assert flags(CLEAN, covered=12) == [0, 0, 0, 0, 1, 0] and flags(CLEAN, covered=5) == [0] * 6
    assert flags(replace(CLEAN, optics=Optics(motion_length=0.1 * face))) == [0, 0, 0, 0, 0, 1]
    assert flags(replace(CLEAN, optics=Optics(motion_length=0.01 * face))) == [0] * 6


def test_a_hand_over_the_mouth_covers_the_mouth_landmarks():
    points = landmarks(CLEAN)
    hand = Occluder("hand", tuple(points[76:96].mean(axis=0) + [0, 10]), 120.0, 0.0, (0.85, 0.7, 0.6))
    shot = render(replace(CLEAN, occluders=(hand,)), GREY, np.random.default_rng(0))
    assert shot.covered[76:96].all() and not shot.covered[96:98].any()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate(out, Preset(9, 90, 1, (160, 192), (90, 120), (256, 256), (100, 140), video_frames=(40, 45)), seed=3, workers=2)
    return out


def test_stills_are_a_readable_wflw_set_with_every_test_subset(world):
    stills = WflwStills(world / "stills")
    assert len(stills.faces("train")) == 9 and len(stills.faces("test")) == 90
    for subset in SUBSETS:
        assert stills.faces("test", subset), subset
    for face in stills.faces("train"):
        image = stills.load_image(face)
        assert image.shape[0] == image.shape[1] and 160 <= image.shape[0] <= 192
        assert 90 * 0.9 <= max(face.box[2] - face.box[0], face.box[3] - face.box[1]) <= 120 * 1.2
        assert np.allclose(face.box, face_box(face.landmarks))


def test_videos_are_a_readable_wflwv_set_with_smooth_motion(world):
    videos = VideoSet(world / "videos")
    assert videos.ids("hard") == ["hard0000"] and videos.ids("easy") == ["easy0000"]
    for video_id in videos.ids():
        item = videos.load(video_id)
        frames = read_video(item.frames_path)
        assert frames.shape == (item.n_frames, 256, 256, 3) and 40 <= item.n_frames <= 45
        box_side = np.maximum(item.boxes[:, 2] - item.boxes[:, 0], item.boxes[:, 3] - item.boxes[:, 1])
        assert np.abs(np.diff(item.landmarks, axis=0)).max() < 0.15 * box_side.min()
        assert np.abs(np.diff(item.boxes, axis=0)).max() < 0.1 * box_side.min()
    difficulty = pd.read_parquet(world / "videos" / "difficulty.parquet")
    assert list(difficulty["split"]) == ["hard", "easy"]
    assert {"ambiguous", "occlusion", "yaw", "blur", "low_light"} <= set(difficulty.columns)


def test_hard_videos_are_more_ambiguous_than_easy_ones():
    fractions = {}
    for hard in (True, False):
        fractions[hard] = [
            shoot(plan_clip(np.random.default_rng([7, hard, k]), hard, 30, (192, 192), (80, 100)), np.random.default_rng(k)).ambiguous["any"].mean()
            for k in range(3)
        ]
    assert min(fractions[True]) > 0.3 and max(fractions[False]) < 0.1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    overlap = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return overlap / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - overlap)


@pytest.fixture
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: threads only wait for each other, more so on a busy machine
    yield
    torch.set_num_threads(threads)


def test_a_face_detector_finds_clean_stills_and_easy_video_frames(world, one_torch_thread):
    from facenet_pytorch import MTCNN

    detector = MTCNN(device="cpu", keep_all=True)
    stills = WflwStills(world / "stills")
    samples = [(stills.load_image(face), face.box) for face in stills.faces("test") if not face.attributes.any()]
    videos = VideoSet(world / "videos")
    frames, boxes = read_video(videos.video_path("easy0000")), videos.load_boxes("easy0000")
    samples += [(frames[t], boxes[t]) for t in range(0, len(frames), 4)]
    found = []
    for image, box in samples:
        detections, _ = detector.detect(image)
        found.append(detections is not None and max(iou(d, box) for d in detections) > 0.5)
    assert len(samples) >= 20 and np.mean(found) >= 0.9


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.parquet"}


def test_the_world_is_the_same_whatever_the_workers_and_after_a_resume(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    generate(one, SMALL, seed=5, workers=1)
    generate(two, SMALL, seed=5, workers=2)
    assert files(one) == files(two)
    (two / "stills" / "WFLW_images" / "test" / "test_00002.jpg").unlink()
    (two / "videos" / "videos" / "easy0000.mp4").unlink()
    (two / "videos" / "videos" / ".partial.easy0000.mp4.q8w1.mp4").write_bytes(b"half a video")  # as a kill leaves
    summary = generate(two, SMALL, seed=5, workers=2)
    assert summary["rendered"] == 2 and summary["reused"] == 12
    assert files(one) == files(two)
    assert generate(two, SMALL, seed=5, workers=1, force=True)["rendered"] == 14
    assert files(one) == files(two)
    assert generate(two, SMALL, seed=6, workers=1)["rendered"] == 14  # another seed is another world
    assert files(one) != files(two)


def test_bad_requests_name_the_problem(tmp_path):
    with pytest.raises(WflwvError, match="unknown preset 'huge'"):
        generate(tmp_path / "a", "huge")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WflwvError, match="not a folder") as error:
        generate(tmp_path / "file", SMALL)
    assert error.value.path == str(tmp_path / "file")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.parquet").write_text("not parquet")
    with pytest.raises(WflwvError, match="manifest") as error:
        generate(tmp_path / "b", SMALL)
    assert error.value.path.endswith("manifest.parquet")
    with pytest.raises(WflwvError, match="seed"):
        generate(tmp_path / "c", SMALL, seed=-1)
