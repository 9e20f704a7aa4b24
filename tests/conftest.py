"""Tiny worlds shared by the tests: benchmark videos and still sets in both WFLW layouts, models, labelled builds."""

import argparse
import collections
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import imageio_ffmpeg
import numpy as np
import pytest
import torch
import torch.nn as nn

from wflwv import io
from wflwv.cli import main
from wflwv.data.crop import box_to_affine, crop, transform_points
from wflwv.data.video import iter_frames, probe, write_video
from wflwv.data.videoset import VideoSet
from wflwv.data.wflw import IMAGES_DIR, Face, WflwStills, write_annotations, write_image, write_precropped
from wflwv.label import label
from wflwv.models import LDEQ, create_model, load_config, register_family, save_checkpoint
from wflwv.predict import Row, RowWriter
from wflwv.synth import generate

def wflwv_command(*args) -> list[str]:
    return [sys.executable, "-c", "from wflwv.cli import main; main()", *map(str, args)]


def run_cli(*args, timeout: float | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`wflwv ARGS` in a new interpreter: for what needs its own process (a kill, a launcher, stdout of C libraries)."""
    environment = os.environ | {"OMP_NUM_THREADS": "1"}  # tiny models on a shared machine, as torch.set_num_threads(1) below
    return subprocess.run(wflwv_command(*args), capture_output=True, text=True, env=environment, timeout=timeout, cwd=cwd)


def run_main(capsys, *args) -> subprocess.CompletedProcess:
    """The CLI's main() in this process, as run_cli without the start-up of a new interpreter."""
    with mock.patch.object(sys, "argv", ["wflwv", *map(str, args)]), pytest.raises(SystemExit) as exit:
        main()
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit.value.code, captured.out, captured.err)


def write_sideways(path: Path, frames: np.ndarray, fps: float) -> Path:
    """A phone video stored sideways: the frames (T, H, W, 3) turned a quarter counter-clockwise, with a -90° display
    matrix that turns them back when shown."""
    stored = path.with_name(f"stored_{path.name}")
    write_video(stored, np.rot90(frames, 1, axes=(1, 2)), fps)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "-90", "-i", str(stored), "-c", "copy", str(path)], check=True)
    return path


VIDEO_LENGTHS = {"h1": 7, "h2": 5, "e1": 6, "e2": 6}
STILL_COUNT = 6
# attribute flags (pose, expression, illumination, makeup, occlusion, blur) of each still: makeup is nobody's
STILL_ATTRIBUTES = [(1, 0, 0, 0, 0, 1), (0, 1, 0, 0, 1, 0), (1, 1, 0, 0, 0, 0), (0, 0, 1, 0, 0, 1), (0, 0, 0, 0, 1, 0), (1, 0, 1, 0, 0, 0)]


def kill_wflwv_when(started: Callable[[], bool], *args) -> str:
    """Start `wflwv ARGS` (one intra-op thread, as this process) and SIGKILL it as soon as `started()`
    holds; returns its output so far. Fails when the command ends before being killed."""
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a full pipe would stall the command
        process = subprocess.Popen(wflwv_command(*args), stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"OMP_NUM_THREADS": "1"})
        while not started() and process.poll() is None:
            time.sleep(0.01)
        process.kill()  # SIGKILL
        process.wait()
        log.seek(0)
        output = log.read()
    assert process.returncode == -signal.SIGKILL, f"wflwv {' '.join(map(str, args))} ended (status {process.returncode}) before the kill: {output[-2000:]}"
    return output


def stage_rows(folder: Path) -> dict[str, str]:
    """A stage's committed rows, item -> text (a rewritten row is a redone item: it records its worker and time)."""
    return {path.stem: path.read_text() for path in (folder / "rows").glob("*.json") if not path.name.startswith(".")}


def redone_items(folder: Path, before: dict[str, str]) -> set[str]:
    """The items whose row is new or rewritten since `before` (stage_rows of the same folder)."""
    return {item for item, text in stage_rows(folder).items() if before.get(item) != text}


@dataclass(frozen=True)
class RegressionOutput:
    landmarks: torch.Tensor  # (B, 98, 2) in [0, 1] crop units


class TinyRegression(nn.Module):
    """A non-DEQ model following the family interface: a strided convolution, pooling and a linear head."""

    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.args = args
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(8 * 4 * 4, 98 * 2)

    def forward(self, images: torch.Tensor) -> RegressionOutput:
        return RegressionOutput(torch.sigmoid(self.head(self.features(images))).view(-1, 98, 2))


register_family("tiny_regression", TinyRegression)
# Tiny models gain nothing from intra-op threads, and on a shared machine their spin-waits cost 10-50x.
torch.set_num_threads(1)


def face_video(length: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bright disc drifting over a dark frame, with landmarks scattered on it and its box."""
    rng = np.random.default_rng(seed)
    centres = np.array([48.0, 40.0]) + np.cumsum(rng.normal(0, 0.5, (length, 2)), axis=0)
    offsets = face_offsets(rng)
    frames = np.stack([disc_image(centre) for centre in centres])
    landmarks = centres[:, None, :] + offsets[None]
    boxes = np.concatenate([centres - 18, centres + 18], axis=1)
    return frames, landmarks, boxes


def face_offsets(rng: np.random.Generator) -> np.ndarray:
    offsets = rng.uniform(-14, 14, (98, 2))
    offsets[60], offsets[72] = (-10, -4), (10, -4)  # outer eye corners apart, as on a face
    return offsets


def disc_image(centre: np.ndarray, shape=(80, 96)) -> np.ndarray:
    image = np.zeros((*shape, 3), dtype=np.uint8)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 18**2] = (200, 160, 140)
    return image


def write_wflwv(root: Path) -> Path:
    videos = VideoSet(root)
    for seed, (video_id, length) in enumerate(VIDEO_LENGTHS.items()):
        videos.write(video_id, *face_video(length, seed), fps=30)
    videos.write_split("hard", ["h1", "h2"])
    videos.write_split("easy", ["e1", "e2"])
    return root


def still_faces() -> list[tuple[np.ndarray, Face]]:
    rng = np.random.default_rng(7)
    stills = []
    for index, attributes in enumerate(STILL_ATTRIBUTES):
        centre = rng.uniform((38, 34), (58, 46))
        stills.append((disc_image(centre), Face(centre + face_offsets(rng), np.concatenate([centre - 18, centre + 18]), attributes, f"faces/{index}.png")))
    return stills


def write_official_stills(root: Path) -> Path:
    """The official layout: WFLW_annotations/list_98pt_rect_attr_test.txt and WFLW_images/."""
    stills = still_faces()
    for image, face in stills:
        write_image(root / IMAGES_DIR / face.image, image)
    write_annotations(WflwStills(root).annotation_path("test"), [face for _, face in stills])
    return root


def write_precropped_stills(root: Path, size: int) -> Path:
    """The pre-cropped layout with the crops of the official set's boxes: test/ and, of the subsets, test_blur/."""
    stills = still_faces()
    affines = [box_to_affine(face.box, size) for _, face in stills]
    crops = np.stack([crop(image, affine, size) for (image, _), affine in zip(stills, affines)])
    points01 = np.stack([transform_points(face.landmarks, affine) / size for (_, face), affine in zip(stills, affines)])
    write_precropped(root, "test", [f"{i}.png" for i in range(len(stills))], crops, points01)
    blurred = [i for i, (_, face) in enumerate(stills) if face.attributes[5]]
    write_precropped(root, "test_blur", [f"{i}.png" for i in blurred], crops[blurred], points01[blurred])
    return root


def ldeq_checkpoint(path: Path, seed: int, released: bool = False, **options) -> Path:
    """An untrained, narrow ldeq_demo (options replace its args); `released`: in the authors' format, with no family key."""
    # beta 0.1 keeps the untrained cell a contraction, so solves stop on the tolerance as a trained model's do
    args = {**load_config("ldeq_demo")["args"], "injection_width": 8, "cell_base_width": 8, "cell_width_increment": 2, "cell_softargmax_beta": 0.1, "max_iters": 4, **options}
    torch.manual_seed(seed)
    model = LDEQ(argparse.Namespace(**args))
    if released:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"args": model.args, "state_dict": model.state_dict()}, path)
    else:
        save_checkpoint(path, model)
    return path


def regression_checkpoint(path: Path) -> Path:
    torch.manual_seed(3)
    save_checkpoint(path, TinyRegression(argparse.Namespace(im_size=64)))
    return path


def write_prediction_file(path: Path, landmarks: np.ndarray) -> Path:
    """One video's landmarks (frames, N, 2) in the format of the path's suffix: .npy, .npz, or `wflwv predict`'s .parquet / .csv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        io.save_npy(path, landmarks)
    elif path.suffix == ".npz":
        np.savez(path, landmarks=landmarks)
    else:
        rows = [Row(frame, -1 if np.isnan(points).any() else 0, None if np.isnan(points).any() else points, 1) for frame, points in enumerate(landmarks)]
        with RowWriter(path, 30.0, 4, csv=path.suffix == ".csv", n_points=landmarks.shape[1]) as writer:
            collections.deque(writer.written(rows), maxlen=0)
    return path


def write_noisy_truth(videos: Path, folder: Path) -> Path:
    """An external method's prediction set: the ground truth plus 1 px of noise, no landmarks on each video's
    third frame, one video in each of the four formats, and a method.json saying it is not causal."""
    rng = np.random.default_rng(5)
    for video_id, suffix in zip(VIDEO_LENGTHS, (".npy", ".npz", ".parquet", ".csv")):
        landmarks = VideoSet(videos).load_landmarks(video_id) + rng.normal(0, 1.0, (VIDEO_LENGTHS[video_id], 98, 2))
        landmarks[2] = np.nan
        write_prediction_file(folder / f"{video_id}{suffix}", landmarks)
    method = {"name": "noisy truth", "description": "ground truth + N(0, 1 px)", "parameters": {"sigma": 1.0}, "causal": False}
    io.save_text(folder / "method.json", json.dumps(method))
    return folder


@pytest.fixture(scope="session")
def bench_world(tmp_path_factory):
    """Videos, an official-layout still set, two LDEQs with different seeds, a tiny regression model and an external prediction set."""
    root = tmp_path_factory.mktemp("bench_world")
    checkpoints = [ldeq_checkpoint(root / "ldeq_a" / "checkpoint.pth.tar", 0), ldeq_checkpoint(root / "ldeq_b" / "checkpoint.pth.tar", 1), regression_checkpoint(root / "regression.pth.tar")]
    videos = write_wflwv(root / "wflwv")
    return argparse.Namespace(root=root, videos=videos, stills=write_official_stills(root / "wflw"), checkpoints=checkpoints, noisy_truth=write_noisy_truth(videos, root / "noisy_truth"))


@pytest.fixture(scope="session")
def bench_run(bench_world):
    """One benchmark of the three models and the prediction set on the videos, and of the models on the stills: (output folder, leaderboards)."""
    from wflwv.bench import BenchSettings, run_bench

    out = bench_world.root / "run"
    settings = BenchSettings(slots=4, rwr_iters=(1, 2), latency_runs=1)
    return out, run_bench(bench_world.checkpoints, out, videos=bench_world.videos, stills=bench_world.stills, settings=settings, predictions={"noisy_truth": bench_world.noisy_truth})


BUILD_FRAMES = 16  # the synthetic videos cut short: labelling tests stay fast on 2 CPU cores
TINY_LDEQ = {"injection_width": 8, "cell_base_width": 8, "cell_width_increment": 4, "cell_softargmax_beta": 0.1, "max_iters": 2}


def make_member(path: Path, seed: int, **overrides) -> Path:
    """A tiny LDEQ with random weights drawn from `seed`, saved as a checkpoint."""
    config = load_config("ldeq_demo")
    config["args"].update(TINY_LDEQ, **overrides)
    torch.manual_seed(seed)
    save_checkpoint(path, create_model(config))
    return path


def copy_build(source: Path, target: Path, *folders: str) -> Path:
    for folder in folders:
        shutil.copytree(source / folder, target / folder)
    return target


@pytest.fixture(scope="session")
def unlabelled_build(tmp_path_factory) -> Path:
    """A build folder (videos/ and true bboxes/) from the tiny synthetic world, each video cut to BUILD_FRAMES frames."""
    root = tmp_path_factory.mktemp("build")
    generate(root / "synth", preset="tiny")
    synth, build = VideoSet(root / "synth" / "videos"), root / "build"
    for video_id in synth.ids():
        fps = probe(synth.video_path(video_id)).fps
        write_video(VideoSet(build).video_path(video_id), itertools.islice(iter_frames(synth.video_path(video_id)), BUILD_FRAMES), fps)
        io.save_npy(VideoSet(build).boxes_path(video_id), synth.load_boxes(video_id)[:BUILD_FRAMES])
    return build


@pytest.fixture(scope="session")
def members(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("members")
    return [make_member(folder / f"m{seed}.pth.tar", seed) for seed in range(2)]


@pytest.fixture(scope="session")
def labelled_build(unlabelled_build, members, tmp_path_factory) -> Path:
    """The build labelled by the two members, in this process; tests copy it before changing it."""
    build = copy_build(unlabelled_build, tmp_path_factory.mktemp("labelled") / "build", "videos", "bboxes")
    label(build, members, batch_size=8)
    return build
