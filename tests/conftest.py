import itertools
import shutil
from pathlib import Path

import pytest
import torch

from wflwv import io
from wflwv.data.video import iter_frames, probe, write_video
from wflwv.data.videoset import VideoSet
from wflwv.label import label
from wflwv.models import create_model, load_config, save_checkpoint
from wflwv.synth import generate

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
