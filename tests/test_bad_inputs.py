"""Bad inputs, command by command: each is refused before any work with one line naming the file and the problem.

CASES is the catalogue of docs/errors.md: (command, what is wrong, how to make it, the message). A case
that exits 2 prints exactly one line, `error: ...`, on stderr; `verify` (and the per-item stages)
report their problems on stdout and exit 1.
"""

import argparse
import errno
import html
import io as io_module
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import VIDEO_LENGTHS, ldeq_checkpoint, run_cli, run_main, write_official_stills, write_wflwv

from wflwv import io
from wflwv.bench import BenchSettings, entry_digest, run_bench
from wflwv.data.videoset import VideoSet
from wflwv.data.wflw import IMAGES_DIR, WflwStills, write_image
from wflwv.metrics import score_videos
from wflwv.configs import MODELS
from wflwv.report import image_tag, read_leaderboard
from wflwv.schemes import convert


@dataclass(frozen=True)
class Case:
    command: str
    name: str
    args: Callable[[Path, argparse.Namespace], list]  # (tmp_path, world) -> the command line after `wflwv`
    message: str  # a regular expression the error line matches
    code: int = 2


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> argparse.Namespace:
    """A WFLW-V folder (hard h1 h2, easy e1 e2), an official still set with train and test, an LDEQ checkpoint, a
    prediction set (the truth + 1 px of noise, .npy) and a bench of it alone (its leaderboard entries)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    stills = write_official_stills(root / "stills")
    shutil.copyfile(WflwStills(stills).annotation_path("test"), WflwStills(stills).annotation_path("train"))
    videos = write_wflwv(root / "videos")
    rng = np.random.default_rng(0)
    for video_id in VIDEO_LENGTHS:
        io.save_npy(root / "preds" / f"{video_id}.npy", VideoSet(videos).load_landmarks(video_id) + rng.normal(0, 1, (VIDEO_LENGTHS[video_id], 98, 2)))
    run_bench([], root / "bench", videos=videos, settings=BenchSettings(filters=("ema",)), predictions={"m": root / "preds"})
    return argparse.Namespace(videos=videos, stills=stills, checkpoint=ldeq_checkpoint(root / "ldeq.pth.tar", 0), predictions=root / "preds", run=root / "bench")


def copy_videos(tmp: Path, world) -> Path:
    return Path(shutil.copytree(world.videos, tmp / "videos"))


def with_list(text: bytes, split: str = "hard") -> Callable:
    def make(tmp: Path, world) -> Path:
        videos = copy_videos(tmp, world)
        (videos / f"{split}_video_IDs.txt").write_bytes(text)
        return videos

    return make


def with_landmarks(change: Callable[[np.ndarray], None], video_id: str = "h1") -> Callable:
    def make(tmp: Path, world) -> Path:
        videos = copy_videos(tmp, world)
        path = videos / "landmarks" / f"{video_id}.npy"
        landmarks = np.load(path)
        change(landmarks)
        np.save(path, landmarks)
        return videos

    return make


def zero_interocular(landmarks: np.ndarray) -> None:
    landmarks[2, 72] = landmarks[2, 60]


def infinite(landmarks: np.ndarray) -> None:
    landmarks[1, 5, 0] = np.inf


def corrupt_video(tmp: Path, world) -> Path:
    """h1.mp4 with random bytes over the middle of its frames' data (the mdat box): demuxing does not notice, decoding fails."""
    videos = copy_videos(tmp, world)
    path = videos / "videos" / "h1.mp4"
    data = bytearray(path.read_bytes())
    mdat = data.find(b"mdat")
    middle = mdat + int.from_bytes(data[mdat - 4 : mdat], "big") // 2
    data[middle - 200 : middle + 200] = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return videos


def hostile_video_name(tmp: Path, world) -> Path:
    """A folder without ID lists (bench takes every video), one video named with a quote."""
    videos = copy_videos(tmp, world)
    for split in ("hard", "easy"):
        (videos / f"{split}_video_IDs.txt").unlink()
    (videos / "videos" / "h1.mp4").rename(videos / "videos" / 'q"x.mp4')
    return videos


def copy_stills(tmp: Path, world) -> Path:
    return Path(shutil.copytree(world.stills, tmp / "stills"))


def with_ibug68_landmarks(video_id: str = "h1") -> Callable:
    """The WFLW-V folder with one video's landmarks mapped to iBUG's 68 points: a set mixing two schemes."""

    def make(tmp: Path, world) -> Path:
        videos = copy_videos(tmp, world)
        path = videos / "landmarks" / f"{video_id}.npy"
        np.save(path, convert(np.load(path), "wflw98", "ibug68"))
        return videos

    return make


def with_annotation(change: Callable[[str], str], split: str = "test") -> Callable:
    def make(tmp: Path, world) -> Path:
        stills = copy_stills(tmp, world)
        path = WflwStills(stills).annotation_path(split)
        path.write_text(change(path.read_text()))
        return stills

    return make


def first_image_as(image_bytes: Callable[[Path], bytes], split: str = "test") -> Callable:
    """The first face's image replaced by faces/0.jpg holding image_bytes(path of a good JPEG)."""

    def make(tmp: Path, world) -> Path:
        stills = with_annotation(lambda text: text.replace("faces/0.png", "faces/0.jpg", 1), split)(tmp, world)
        jpeg = stills / IMAGES_DIR / "faces" / "0.jpg"
        write_image(jpeg, np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8))
        jpeg.write_bytes(image_bytes(jpeg))
        return stills

    return make


def truncated(path: Path) -> bytes:
    return path.read_bytes()[: path.stat().st_size // 2]


def line_values(change: Callable[[list[str]], None]) -> Callable[[str], str]:
    """An annotation text with its first line's fields changed."""

    def apply(text: str) -> str:
        first, rest = text.split("\n", 1)
        fields = first.split()
        change(fields)
        return " ".join(fields) + "\n" + rest

    return apply


def eyes_together(fields: list[str]) -> None:
    fields[144:146] = fields[120:122]  # point 72 onto point 60


def image_path_up(fields: list[str]) -> None:
    fields[-1] = "../../outside.png"


def bench(make_videos: Callable | None = None, *extra, make_stills: Callable | None = None) -> Callable:
    def args(tmp: Path, world) -> list:
        sources = ["--videos", make_videos(tmp, world)] if make_videos else []
        sources += ["--stills", make_stills(tmp, world)] if make_stills else []
        return ["bench", "--model", world.checkpoint, *sources, "--out", tmp / "out", "--rwr-iters", "1", "--filters", "ema", *extra]

    return args


def verify(make_videos: Callable) -> Callable:
    return lambda tmp, world: ["verify", make_videos(tmp, world)]


def train(make_stills: Callable | None = None, *extra, config: str | None = None, args: tuple[str, str] | None = None) -> Callable:
    """train on the world's stills (or `make_stills`'); `config`: ldeq_demo with this [train] table; `args`: with this (old, new) line of [args]."""
    edit = args

    def args(tmp: Path, world) -> list:
        stills = make_stills(tmp, world) if make_stills else world.stills
        chosen = ["--config", write_config(tmp, config)] if config else []
        if edit:
            chosen = ["--config", tmp / "model.toml"]
            (tmp / "model.toml").write_text((MODELS / "ldeq_demo.toml").read_text().replace(*edit))
        return ["train", "--data", stills, "--out", tmp / "run", *chosen, *extra]

    return args


def write_config(tmp: Path, train_table: str) -> Path:
    """ldeq_demo with its [train] table replaced."""
    text = (MODELS / "ldeq_demo.toml").read_text()
    path = tmp / "model.toml"
    path.write_text(text[: text.index("[train]")] + "[train]\n" + train_table + "\n")
    return path


def predict(*extra, video: Callable | None = None) -> Callable:
    def args(tmp: Path, world) -> list:
        path = video(tmp, world) if video else world.videos / "videos" / "h1.mp4"
        return ["predict", path, "--model", world.checkpoint, "--out", tmp / "h1.parquet", *extra]

    return args


def run(toml: str) -> Callable:
    def args(tmp: Path, world) -> list:
        path = tmp / "pipeline.toml"
        path.write_text('build = "build"\n' + toml + "\n")
        return ["run", path]

    return args


def report(files: dict[str, bytes]) -> Callable:
    def args(tmp: Path, world) -> list:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        return ["report", tmp]

    return args


def prediction_set(change: Callable[[Path], None]) -> Callable:
    """A copy of the world's prediction set, changed."""

    def make(tmp: Path, world) -> Path:
        folder = Path(shutil.copytree(world.predictions, tmp / "preds"))
        change(folder)
        return folder

    return make


def bench_set(make_set: Callable, name: str = "m") -> Callable:
    def args(tmp: Path, world) -> list:
        return ["bench", "--predictions", f"{name}={make_set(tmp, world)}", "--videos", world.videos, "--out", tmp / "out", "--filters", "ema"]

    return args


def set_landmarks(change: Callable[[np.ndarray], None], video_id: str = "h1") -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        landmarks = np.load(folder / f"{video_id}.npy")
        change(landmarks)
        np.save(folder / f"{video_id}.npy", landmarks)

    return apply


def method_json(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "method.json").write_text(text)


def no_complete_frame(landmarks: np.ndarray) -> None:
    landmarks[np.arange(len(landmarks)), np.arange(len(landmarks)) % 98] = np.nan  # a different point missing in each frame


def npy_claiming(frames: int) -> Callable[[Path], None]:
    """h1.npy whose header claims `frames` frames, with one frame of data."""

    def write(folder: Path) -> None:
        with open(folder / "h1.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (frames, 98, 2)})
            f.write(np.zeros((98, 2)).tobytes())

    return write


def npz_decompressing_to(size: int) -> Callable[[Path], None]:
    """h1.npz instead of h1.npy, whose zip directory says `landmarks.npy` decompresses to `size` bytes."""

    def write(folder: Path) -> None:
        landmarks = np.load(folder / "h1.npy")
        (folder / "h1.npy").unlink()
        np.savez_compressed(folder / "h1.npz", landmarks=landmarks)
        data = bytearray((folder / "h1.npz").read_bytes())
        central = data.index(b"PK\x01\x02")  # the central directory entry: its uncompressed size at offset 24
        data[central + 24 : central + 28] = size.to_bytes(4, "little")
        (folder / "h1.npz").write_bytes(bytes(data))

    return write


def linked_set(tmp: Path, world, link=Path.symlink_to) -> Path:
    """A prediction set whose files are symlinks (or, with Path.hardlink_to, hard links) to the video set's ground truth."""
    folder = tmp / "linked"
    folder.mkdir()
    for video_id in VIDEO_LENGTHS:
        link(folder / f"{video_id}.npy", VideoSet(world.videos).landmarks_path(video_id).resolve())
    return folder


def with_set_name(value: str) -> Callable:
    return lambda tmp, world: ["bench", "--predictions", value.format(set=world.predictions), "--videos", world.videos, "--out", tmp / "out", "--filters", "ema"]


def unnamed_set(make_set: Callable) -> Callable:
    """--predictions DIR: the name from its method.json."""
    return lambda tmp, world: ["bench", "--predictions", make_set(tmp, world), "--videos", world.videos, "--out", tmp / "out"]


def predict_onto_input(name: str, option: str) -> Callable:
    """predict on a copy of a video named `name`, with `option` (--out or --overlay) naming that copy."""

    def args(tmp: Path, world) -> list:
        video = Path(shutil.copyfile(world.videos / "videos" / "h1.mp4", tmp / name))
        return ["predict", video, "--model", world.checkpoint, *(["--out", tmp / "x.parquet"] if option == "--overlay" else []), option, video]

    return args


def edited_entries(change: Callable[[list[dict]], list[str]]) -> Callable:
    """A copy of the world's bench whose leaderboard_entries.jsonl is `change`d (it returns the new lines)."""

    def make(tmp: Path, world) -> Path:
        run = Path(shutil.copytree(world.run, tmp / "bench"))
        path = run / "leaderboard_entries.jsonl"
        path.write_text("".join(line + "\n" for line in change([json.loads(line) for line in path.read_text().splitlines()])))
        return run

    return make


def merge(make_run: Callable, *extra, with_world_run: bool = False) -> Callable:
    def args(tmp: Path, world) -> list:
        return ["leaderboard", "merge", *([world.run] if with_world_run else []), make_run(tmp, world), "--out", tmp / "out", *extra]

    return args


def raw_entry(entries: list[dict]) -> dict:
    return next(entry for entry in entries if entry["method"] == "raw")


def set_row(key: str, value, redigest: bool = False, model: str | None = None) -> Callable[[list[dict]], list[str]]:
    """The raw entry with row[key] = value (and, to forge it, another model name and its digest recomputed)."""

    def change(entries: list[dict]) -> list[str]:
        entry = raw_entry(entries)
        entry["row"][key] = value
        if model is not None:
            entry["model"] = entry["row"]["model"] = model
        if redigest:
            entry["entry_digest"] = entry_digest(entry)
        return [json.dumps(entry)]

    return change


def infinite_score(entries: list[dict]) -> list[str]:
    """nme_hard written as 1e999, which JSON parses as infinity."""
    return [line.replace('"INF"', "1e999") for line in set_row("nme_hard", "INF")(entries)]


def renamed_entry(entries: list[dict]) -> list[str]:
    entry = raw_entry(entries)
    entry["model"] = "zzz"  # its row still says m
    return [json.dumps(entry)]


def bare_row(entries: list[dict]) -> list[str]:
    """The raw entry with a row of its model and method alone, its digest recomputed: well-formed, forged, without a score."""
    entry = raw_entry(entries)
    entry["row"] = {"model": entry["model"], "method": entry["method"]}
    entry["entry_digest"] = entry_digest(entry)
    return [json.dumps(entry)]


def with_files(files: dict[str, bytes]) -> Callable:
    """A copy of the world's bench with these files written over."""

    def make(tmp: Path, world) -> Path:
        run = Path(shutil.copytree(world.run, tmp / "bench"))
        for name, data in files.items():
            (run / name).write_bytes(data)
        return run

    return make


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def fixed(*args) -> Callable:
    return lambda tmp, world: [a(tmp, world) if callable(a) else a for a in args]


def video_of(tmp: Path, world) -> Path:
    return world.videos / "videos" / "h1.mp4"


def videos_of(tmp: Path, world) -> Path:
    return world.videos


def unused(tmp: Path, world) -> Path:
    """An --out that a refused command line must leave empty: in the test's own folder."""
    return tmp / "unused"


def model_of(tmp: Path, world) -> Path:
    return world.checkpoint


def raw_pickle(tmp: Path, world) -> Path:
    import pickle

    path = tmp / "raw.pth.tar"
    path.write_bytes(pickle.dumps({"args": None, "state_dict": {}}))
    return path


def file_in(tmp: Path) -> Path:
    (tmp / "file").write_text("")
    return tmp / "file"


HOSTILE_ID = "q\"onerror=\"document.title='XSS';self"
INVALID_ID = "must be letters, digits, '_', '-' and '.'"
RANGE = "is not in the range"
UNWRITABLE = "cannot be written"

CASES = [
    # verify: everything bench would refuse
    Case("verify", "hostile ID", verify(with_list(f"h1\n{HOSTILE_ID}\n".encode())), f"line 2: video ID .* {INVALID_ID}", 1),
    Case("verify", "300-character ID", verify(with_list(b"h1\n" + b"x" * 300 + b"\n")), "line 2: video ID 'x{20}'... has 300 characters, at most 128", 1),
    Case("verify", "ID with a path separator", verify(with_list(b"h1\nx/../h2\n")), f"line 2: .*{INVALID_ID}", 1),
    Case("verify", "ID starting with a dot", verify(with_list(b".h1\n")), f"line 1: .*{INVALID_ID}", 1),
    Case("verify", "ID with an angle bracket", verify(with_list(b"h1<b>\n")), f"line 1: .*{INVALID_ID}", 1),
    Case("verify", "non-UTF-8 ID list", verify(with_list(b"h1\n\xff\xfe\n")), r"hard_video_IDs.txt: not UTF-8 text \(byte 3\)", 1),
    Case("verify", "duplicate ID", verify(with_list(b"h1\nh2\nh1\n")), r"hard_video_IDs.txt: line 3: h1 is listed twice \(first on line 1\)", 1),
    Case("verify", "empty ID list", verify(with_list(b"\n\n")), "hard_video_IDs.txt: lists no video IDs", 1),
    Case("verify", "zero inter-ocular distance", verify(with_landmarks(zero_interocular)), r"landmarks/h1.npy: landmarks of frame 2: points 60 and 72 coincide", 1),
    Case("verify", "infinite landmark", verify(with_landmarks(infinite)), "landmarks/h1.npy: landmarks of frame 1 are infinite", 1),
    Case("verify", "corrupt mp4 (random bytes in the middle)", verify(corrupt_video), r"videos/h1.mp4: .*corrupt", 1),
    Case("verify", "videos of two point schemes", verify(with_ibug68_landmarks()), "landmarks/h1.npy: landmarks have 68 points, the set's other videos have 98", 1),
    # bench
    Case("bench", "hostile ID", bench(with_list(f"h1\n{HOSTILE_ID}\n".encode())), f"hard_video_IDs.txt: line 2: video ID .* {INVALID_ID}"),
    Case("bench", "video file named with a quote", bench(lambda tmp, world: hostile_video_name(tmp, world)), "videos/q\"x.mp4: the file name is not a video ID: at most 128 letters"),
    Case("bench", "300-character ID", bench(with_list(b"x" * 300 + b"\n")), "hard_video_IDs.txt: line 1: video ID 'x{20}'... has 300 characters"),
    Case("bench", "non-UTF-8 ID list", bench(with_list(b"\xff\n")), "hard_video_IDs.txt: not UTF-8 text"),
    Case("bench", "duplicate ID", bench(with_list(b"h1\nh2\nh1\n")), r"hard_video_IDs.txt: line 3: h1 is listed twice \(first on line 1\)"),
    Case("bench", "empty hard list", bench(with_list(b"")), "hard_video_IDs.txt: lists no video IDs"),
    Case("bench", "zero inter-ocular distance", bench(with_landmarks(zero_interocular, "e2")), "landmarks/e2.npy: landmarks of frame 2: points 60 and 72 coincide"),
    Case("bench", "infinite landmark", bench(with_landmarks(infinite)), "landmarks/h1.npy: landmarks of frame 1 are infinite"),
    Case("bench", "videos of two point schemes", bench(with_ibug68_landmarks("e1")), "landmarks/e1.npy: landmarks have 68 points, the set's other videos have 98"),
    Case("bench", "unknown --scheme", bench(videos_of, "--scheme", "dlib5"), "unknown point scheme 'dlib5', expected one of ibug68, mediapipe478, wflw98"),
    Case("bench", "--slots 0", bench(videos_of, "--slots", "0"), f"'--slots': 0 {RANGE}"),
    Case("bench", "--rwr-iters 0", bench(videos_of, "--rwr-iters", "0"), f"'--rwr-iters': 0 {RANGE}"),
    Case("bench", "--rwr-iters 1,x", bench(videos_of, "--rwr-iters", "1,x"), "'--rwr-iters': 'x' is not a valid integer"),
    Case("bench", "unknown filter", bench(videos_of, "--filters", "ema,butterworth"), "unknown filter 'butterworth'"),
    Case("bench", "--out under /proc", fixed("bench", "--model", model_of, "--videos", videos_of, "--out", "/proc/x/out"), f"/proc/x/out: {UNWRITABLE}"),
    Case("bench", "--out under a file", lambda tmp, world: ["bench", "--model", world.checkpoint, "--videos", world.videos, "--out", file_in(tmp) / "out"], UNWRITABLE),
    Case("bench", "neither --videos nor --stills", fixed("bench", "--model", model_of, "--out", unused), "give --videos, --stills or both"),
    Case("bench", "missing checkpoint", fixed("bench", "--model", "no_such.pth.tar", "--videos", videos_of, "--out", unused), "'no_such.pth.tar' does not exist"),
    Case("bench", "raw-pickle checkpoint", lambda tmp, world: ["bench", "--model", raw_pickle(tmp, world), "--videos", world.videos, "--out", tmp / "out"], r"raw.pth.tar: not a PyTorch checkpoint \(UnpicklingError\)"),
    Case("bench", "unknown --nmf", bench(videos_of, "--nmf", "other"), "'--nmf': 'other' is not one of 'paper', 'released'"),
    Case("bench", "truncated JPEG still", bench(make_stills=first_image_as(truncated)), "faces/0.jpg: truncated JPEG: no end-of-image marker"),
    Case("bench", "still that is not an image", bench(make_stills=first_image_as(lambda path: b"not an image")), r"faces/0.jpg: not a readable image"),
    Case("bench", "still path leaving the images folder", bench(make_stills=with_annotation(line_values(image_path_up))), r"line 1: image path '../../outside.png' leaves WFLW_images/"),
    Case("bench", "still with zero inter-ocular distance", bench(make_stills=with_annotation(line_values(eyes_together))), r"list_98pt_rect_attr_test.txt: line 1: points 60 and 72 coincide"),
    # bench: prediction sets
    Case("bench", "method.json nested 1,000 levels deep", bench_set(prediction_set(method_json("[" * 1000))), r"preds/method.json: not valid JSON \(nested deeper than 16 levels\)"),
    Case("bench", "method.json of 100,000 bytes", bench_set(prediction_set(method_json("[" * 100_000))), "preds/method.json: 100000 bytes, more than the 65536 allowed"),
    Case("bench", "set with one point NaN in every frame", bench_set(prediction_set(set_landmarks(lambda a: a.__setitem__((slice(None), 5, 0), np.nan)))),
         r"preds/h1.npy: no landmarks in any frame of video 'h1' \(a frame with any NaN point has none; point 5 is NaN in every frame\)"),
    Case("bench", "set with no complete frame", bench_set(prediction_set(set_landmarks(no_complete_frame))), r"preds/h1.npy: no landmarks in any frame of video 'h1' \(a frame with any NaN point has none\)"),
    Case("bench", "set with a huge finite landmark", bench_set(prediction_set(set_landmarks(lambda a: a.__setitem__(3, 1e308)))), "preds/h1.npy: landmarks of frame 3 are beyond ±1e6 px"),
    Case("bench", ".npy header claiming 2,000,000 frames", bench_set(prediction_set(npy_claiming(2_000_000))), "preds/h1.npy: the video has 7 frames, the predictions have 2000000"),
    Case("bench", ".npz decompressing to 4 GB", bench_set(prediction_set(npz_decompressing_to(4_000_000_000))), r"preds/h1.npz: 'landmarks' decompresses to 4000000000 bytes, more than the 1073741824 allowed"),
    Case("bench", "set linked to the ground truth", bench_set(linked_set), r"linked/e1.npy: is the video set's own file .*landmarks/e1.npy: a prediction set must not link to the ground truth"),
    Case("bench", "set hard-linked to the ground truth", bench_set(lambda tmp, world: linked_set(tmp, world, Path.hardlink_to)),
         r"linked/e1.npy: is the video set's own file .*landmarks/e1.npy: a prediction set must not link to the ground truth"),
    Case("bench", "method name with a path", with_set_name("../../escape/x={set}"), r"'--predictions': method name '../../escape/x' must be 1 to 64 letters"),
    Case("bench", "empty method name", with_set_name("={set}"), r"'--predictions': method name '' must be 1 to 64 letters"),
    Case("bench", "method.json name with markup", unnamed_set(prediction_set(method_json('{"name": "<b>x</b>"}'))), r"'--predictions': .*method.json: method name '<b>x</b>' must be"),
    Case("bench", "ground truth with one NaN point", bench(with_landmarks(lambda a: a.__setitem__((3, 7, 1), np.nan))), r"landmarks/h1.npy: landmarks of frame 3: 1 of 98 points are NaN"),
    Case("verify", "ground truth with one NaN point", verify(with_landmarks(lambda a: a.__setitem__((3, 7, 1), np.nan))), r"landmarks/h1.npy: landmarks of frame 3: 1 of 98 points are NaN", 1),
    # leaderboard merge
    Case("merge", "a JSON number as an entry", merge(edited_entries(lambda entries: ["5"])), "leaderboard_entries.jsonl: entry 1: expected a JSON object, got int"),
    Case("merge", "a JSON list as an entry", merge(edited_entries(lambda entries: ['["model", "method", "row"]'])), "entry 1: expected a JSON object, got list"),
    Case("merge", "row not an object", merge(edited_entries(lambda entries: [json.dumps(raw_entry(entries) | {"row": "notadict"})])), "entry 1: row must be a JSON object, got str"),
    Case("merge", "text in a number", merge(edited_entries(set_row("nme_hard", "abc"))), "entry 1: row nme_hard: 'abc' is not a finite number"),
    Case("merge", "a list in a number", merge(edited_entries(set_row("nme_hard", [1, 2]))), r"entry 1: row nme_hard: '\[1, 2\]' is not a finite number"),
    Case("merge", "entry nested 100,000 levels", merge(edited_entries(lambda entries: ['{"model": ' + "[" * 100_000])), r"entry 1: not a JSON entry \(nested deeper than 4 levels\)"),
    Case("merge", "a 300 kB string in the row", merge(edited_entries(set_row("description", "x" * 300_000))), "entry 1: longer than 262144 bytes"),
    Case("merge", "NaN score", merge(edited_entries(set_row("nme_hard", float("nan")))), "entry 1: row nme_hard: 'nan' is not a finite number"),
    Case("merge", "infinite score (1e999)", merge(edited_entries(infinite_score)), "entry 1: row nme_hard: 'inf' is not a finite number"),
    Case("merge", "huge score", merge(edited_entries(set_row("nme_hard", 1e300))), "entry 1: row nme_hard: '1e[+]300' is not a finite number below 1e[+]06"),
    Case("merge", "tampered row, digests unchanged", merge(edited_entries(set_row("nme_hard", 0.001))), "entry 1: m / raw does not match its entry_digest: the entry was edited"),
    Case("merge", "an entry that names itself twice", merge(edited_entries(renamed_entry)), "entry 1: its row names 'm' / 'raw', the entry 'zzz' / 'raw'"),
    Case("merge", "forged row beside its genuine twin", merge(edited_entries(set_row("nme_hard", 0.001, redigest=True, model="forged")), with_world_run=True),
         "bench/leaderboard_entries.jsonl: forged / raw has the predictions of m / raw but other scores"),
    Case("merge", "forged row, --verify", lambda tmp, world: merge(edited_entries(set_row("nme_hard", 0.001, redigest=True)), "--verify", world.videos)(tmp, world),
         r"m / raw: nme_hard is 0.001, its predictions score \d"),
    Case("merge", "a row without its scores (digest recomputed)", merge(edited_entries(bare_row)), "entry 1: row lacks memory_<split>: it scores no split as wflwv bench writes them"),
    Case("merge", "bench.json of another shape, --verify", lambda tmp, world: merge(with_files({"bench.json": b'{"models": [{"lab": 1}]}'}), "--verify", world.videos)(tmp, world),
         r"bench.json: not a bench manifest: expected models and predictions, each a label and its runs' folders"),
    Case("merge", "bench.json models a number, --verify", lambda tmp, world: merge(with_files({"bench.json": b'{"models": 5}'}), "--verify", world.videos)(tmp, world),
         r"bench.json: not a bench manifest"),
    Case("merge", "bench.json a list, --verify", lambda tmp, world: merge(with_files({"bench.json": b'[1]'}), "--verify", world.videos)(tmp, world),
         r"bench.json: not a bench manifest"),
    Case("merge", "--out one of the runs", lambda tmp, world: ["leaderboard", "merge", world.run, "--out", world.run], "Invalid value for --out: .* is one of the runs"),
    # predict
    Case("predict", "--overlay naming the input", predict_onto_input("h1.mp4", "--overlay"), r"h1.mp4: is the input video"),
    Case("predict", "--out naming the input", predict_onto_input("clip.parquet", "--out"), r"clip.parquet: is the input video"),
    Case("predict", "--smoothing -1", predict("--smoothing", "-1"), f"'--smoothing': -1.0 {RANGE}"),
    Case("predict", "--max-side -5", predict("--max-side", "-5"), f"'--max-side': -5 {RANGE}"),
    Case("predict", "--max-gap -1", predict("--max-gap", "-1"), f"'--max-gap': -1 {RANGE}"),
    Case("predict", "--rwr-iters 0", predict("--rwr-iters", "0"), f"'--rwr-iters': 0 {RANGE}"),
    Case("predict", "--out under /proc", predict("--out", "/proc/x/landmarks.parquet"), f"/proc/x/landmarks.parquet: {UNWRITABLE}"),
    Case("predict", "--overlay under /proc", predict("--overlay", "/proc/x/overlay.mp4"), f"/proc/x/overlay.mp4: {UNWRITABLE}"),
    Case("predict", "corrupt mp4", predict(video=lambda tmp, world: corrupt_video(tmp, world) / "videos" / "h1.mp4"), r"h1.mp4: .*corrupt"),
    Case("predict", "raw-pickle checkpoint", lambda tmp, world: ["predict", video_of(tmp, world), "--model", raw_pickle(tmp, world), "--out", tmp / "x.parquet"], "not a PyTorch checkpoint"),
    # train
    Case("train", "--epochs 0", train(None, "--epochs", "0"), f"'--epochs': 0 {RANGE}"),
    Case("train", "--seed -1", train(None, "--seed", "-1"), f"'--seed': -1 {RANGE}"),
    Case("train", "--out under /proc", fixed("train", "--data", lambda tmp, world: world.stills, "--out", "/proc/x"), f"/proc/x: {UNWRITABLE}"),
    Case("train", "batch_size = 0 in the model config", train(config="batch_size = 0"), r"\[train\] batch_size: 0 is not >= 1"),
    Case("train", "epochs = 0 in the model config", train(config="epochs = 0"), r"\[train\] epochs: 0 is not >= 1"),
    Case("train", "negative lr in the model config", train(config="lr = -0.001"), r"\[train\] lr: -0.001 is not >= 0"),
    Case("train", "spectral_steps = 0 in the model config", train(config="spectral_steps = 0"), r"\[train\] spectral_steps: 0 is not >= 1"),
    Case("train", "jacobian_vectors = 0 in the model config", train(config="jacobian_vectors = 0"), r"\[train\] jacobian_vectors: 0 is not >= 1"),
    Case("train", "spectral_solve = \"last\" in the model config", train(config='spectral_solve = "last"'), r"\[train\] spectral_solve: 'last' is none of first, warm_start"),
    Case("train", "warm_start_augmentation without a term that solves it in the model config", train(config="[train.warm_start_augmentation]\nlow_light_prob = 1.0"),
         r"\[train\] warm_start_augmentation needs a term that solves it"),
    Case("train", "low_light_prob = 1.5 in the config's augmentation", train(config="[train.augmentation]\nlow_light_prob = 1.5"),
         r"invalid \[train\] table: augmentation low_light_prob must be a probability in \[0, 1\], got 1.5"),
    Case("train", "batch_size a string in the model config", train(config='batch_size = "32"'), r"\[train\] batch_size: '32' is not an integer"),
    Case("train", "truncated JPEG test image", train(first_image_as(truncated)), "faces/0.jpg: truncated JPEG: no end-of-image marker"),
    Case("train", "truncated JPEG training image", train(first_image_as(truncated, "train")), "faces/0.jpg: truncated JPEG"),
    Case("train", "missing training image", train(with_annotation(lambda text: text.replace("faces/1.png", "faces/missing.png"), "train")), "faces/missing.png: no such image"),
    Case("train", "image path with ../", train(with_annotation(line_values(image_path_up), "train")), "list_98pt_rect_attr_train.txt: line 1: image path '../../outside.png' leaves WFLW_images/"),
    Case("train", "max_iters = -3 in the config's [args]", train(args=("max_iters = 6", "max_iters = -3")), r"model.toml: invalid ldeq args: max_iters: -3 is not >= 1"),
    Case("train", "unknown key in the config's [args]", train(args=("max_iters = 6", "max_iter = 6")), r"model.toml: \[args\] max_iter: not an option of the ldeq family"),
    # study
    Case("study", "--seeds 0,0", lambda tmp, world: ["study", "--world", tmp, "--out", tmp / "out", "--seeds", "0,0"], "seeds must be distinct integers from 0 to 4294967295: 0 is not"),
    Case("study", "--seeds 99999999999999999999", lambda tmp, world: ["study", "--world", tmp, "--out", tmp / "out", "--seeds", "99999999999999999999"], f"'--seeds': 99999999999999999999 {RANGE}"),
    # diagnose
    Case("diagnose", "--pairs 0", fixed("diagnose", "--videos", videos_of, "--model", model_of, "--pairs", "0"), f"'--pairs': 0 {RANGE}"),
    Case("diagnose", "raw-pickle checkpoint", lambda tmp, world: ["diagnose", "--videos", world.videos, "--model", raw_pickle(tmp, world)], "not a PyTorch checkpoint"),
    # boxes, label, split, scrape, synth: options out of range
    Case("boxes", "--batch-size 0", fixed("boxes", "--build", videos_of, "--batch-size", "0"), f"'--batch-size': 0 {RANGE}"),
    Case("boxes", "--max-gap -1", fixed("boxes", "--build", videos_of, "--max-gap", "-1"), f"'--max-gap': -1 {RANGE}"),
    Case("boxes", "--smoothing -0.5", fixed("boxes", "--build", videos_of, "--smoothing", "-0.5"), f"'--smoothing': -0.5 {RANGE}"),
    Case("boxes", "--min-face 1.5", fixed("boxes", "--build", videos_of, "--min-face", "1.5"), f"'--min-face': 1.5 {RANGE}"),
    Case("boxes", "--round 0", fixed("boxes", "--build", videos_of, "--round", "0"), f"'--round': 0 {RANGE}"),
    Case("boxes", "--max-side -1", fixed("boxes", "--build", videos_of, "--max-side", "-1"), f"'--max-side': -1 {RANGE}"),
    Case("label", "--batch-size 0", fixed("label", "--build", videos_of, "--members", model_of, "--batch-size", "0"), f"'--batch-size': 0 {RANGE}"),
    Case("split", "--k 0", fixed("split", "--build", videos_of, "--k", "0"), f"'--k': 0 {RANGE}"),
    Case("split", "--k eight", fixed("split", "--build", videos_of, "--k", "eight"), "'--k': 'eight' is not a valid integer"),
    Case("scrape", "--per-query 0", fixed("scrape", "--out", unused, "--queries", "q.txt", "--per-query", "0"), f"'--per-query': 0 {RANGE}"),
    Case("scrape", "--retries -1", fixed("scrape", "--out", unused, "--queries", "q.txt", "--retries", "-1"), f"'--retries': -1 {RANGE}"),
    Case("scrape", "--timeout 0", fixed("scrape", "--out", unused, "--queries", "q.txt", "--timeout", "0"), f"'--timeout': 0.0 {RANGE}"),
    Case("scrape", "--window-seconds 0", fixed("scrape", "--out", unused, "--queries", "q.txt", "--window-seconds", "0"), f"'--window-seconds': 0.0 {RANGE}"),
    Case("scrape", "--max-height 0", fixed("scrape", "--out", unused, "--queries", "q.txt", "--max-height", "0"), f"'--max-height': 0 {RANGE}"),
    Case("scrape", "--min-interval -1", fixed("scrape", "--out", unused, "--queries", "q.txt", "--min-interval", "-1"), f"'--min-interval': -1.0 {RANGE}"),
    Case("scrape", "--backoff -1", fixed("scrape", "--out", unused, "--queries", "q.txt", "--backoff", "-1"), f"'--backoff': -1.0 {RANGE}"),
    Case("scrape", "--out under /proc", fixed("scrape", "--out", "/proc/x", "--queries", "q.txt"), f"/proc/x: {UNWRITABLE}"),
    Case("scrape", "--rate-limit fast", fixed("scrape", "--out", unused, "--queries", "q.txt", "--rate-limit", "fast"), "'fast' is not a rate in bytes per second"),
    Case("scrape", "non-UTF-8 URL list", lambda tmp, world: ["scrape", "--out", tmp / "out", "--urls", write_bytes(tmp / "urls.csv", b"url,licence\nhttp://x/\xe9,cc-by\n")],
         r"urls.csv: not UTF-8 text \(byte 21\)"),
    Case("synth", "--workers 0", fixed("synth", "--out", unused, "--workers", "0"), f"'--workers': 0 {RANGE}"),
    Case("export", "duplicate ID", lambda tmp, world: ["export", "--build", with_list(b"h1\nh1\n")(tmp, world), "--out", tmp / "exported"], "line 2: h1 is listed twice"),
    # click's own usage errors, as one line
    Case("cli", "unknown option", fixed("bench", "--bogus"), "No such option '--bogus'"),
    Case("cli", "missing required option", fixed("split", "--k", "1"), "Missing option '--build'"),
    Case("cli", "unknown command", fixed("bogus"), "No such command 'bogus'"),
    Case("cli", "missing argument", fixed("verify"), "Missing argument 'ROOT'"),
    Case("run", "--only an unknown step", fixed("run", "demo", "--only", "bogus"), "unknown step 'bogus'"),
    # run: the whole pipeline file checked before any step
    Case("run", "misspelt key", run("[boxes]\nmin_fcae = 0.5"), r"pipeline.toml: unknown key 'boxes.min_fcae' \(known in \[boxes\]: min_face"),
    Case("run", "string for an integer", run('[split]\nk = "eight"'), "pipeline.toml: split.k: 'eight' is not an integer"),
    Case("run", "value out of range", run("[split]\nk = 0"), "pipeline.toml: split.k: 0 is not >= 1"),
    Case("run", "unknown key in [scrape.fetch]", run('[scrape]\nsource = "ids"\n[scrape.fetch]\nmax_heigth = 720'), "pipeline.toml: unknown key 'scrape.fetch.max_heigth'"),
    Case("run", "unknown table", run("[bogus]"), "pipeline.toml: unknown key 'bogus'"),
    Case("run", "unknown scrape source", run('[scrape]\nsource = "ftp"'), "pipeline.toml: scrape.source: 'ftp' is not one of loopback, queries, ids, urls, info_json, real"),
    Case("run", "boolean for a number", run("[boxes]\nmin_face = true"), "pipeline.toml: boxes.min_face: True is not a number"),
    Case("run", "min_face above 1", run("[boxes]\nmin_face = 2.0"), "pipeline.toml: boxes.min_face: 2.0 is not <= 1"),
    Case("run", "negative smoothing", run("[boxes]\nsmoothing = -0.1"), "pipeline.toml: boxes.smoothing: -0.1 is not >= 0"),
    Case("run", "batch size 0", run("[label]\nbatch_size = 0"), "pipeline.toml: label.batch_size: 0 is not >= 1"),
    Case("run", "unknown filter", run('[bench]\nfilters = ["ema", "butterworth"]'), r"pipeline.toml: bench.filters\[1\]: 'butterworth' is not one of ema"),
    Case("run", "empty model list", run("[bench]\nmodels = []"), "pipeline.toml: bench.models: expected a non-empty list"),
    Case("run", "table for a value", run("[split.k]\nx = 1"), r"pipeline.toml: split.k: \{'x': 1\} is not an integer"),
    Case("run", "value for a table", run('oracle = "yes"'), "pipeline.toml: oracle: expected a table"),
    Case("run", "members epochs 0", run('[members]\nepochs = 0'), "pipeline.toml: members.epochs: 0 is not >= 1"),
    Case("run", "invalid TOML", run("[split\nk = 1"), "pipeline.toml: invalid TOML"),
    Case("run", "no such file", fixed("run", "no_such.toml"), "no_such.toml: no such pipeline file"),
    Case("run", "world.out that cannot be written", run('[world]\nout = "/proc/x/world"\npreset = "tiny"'), "/proc/x/world: cannot be written"),
    # report
    Case("report", "truncated bench.json", report({"bench.json": b'{"videos": "/x", "sp'}), r"bench.json: not a readable bench manifest .*: rerun wflwv bench"),
    Case("report", "non-UTF-8 bench.json", report({"bench.json": b'{"videos": "\xff"}'}), "bench.json: not a readable bench manifest"),
    Case("report", "truncated leaderboard parquet", report({"bench.json": b'{"stills": "/x"}', "still_leaderboard.parquet": b"PAR1\x00\x00trunc"}), r"still_leaderboard.parquet: not a readable parquet file .*: rerun wflwv bench"),
    Case("report", "no bench.json", report({}), "bench.json: no bench manifest"),
    Case("report", "bench.json a list", report({"bench.json": b"[1]"}), "bench.json: not a bench manifest as wflwv bench writes it"),
    Case("report", "bench.json videos a number", report({"bench.json": b'{"videos": 5}'}), "bench.json: not a bench manifest as wflwv bench writes it"),
    Case("report", "bench.json prediction set without its method", report({"bench.json": b'{"predictions": [{"label": "m", "runs": {"raw": "p"}}]}'}),
         "bench.json: not a bench manifest as wflwv bench writes it"),
]


def test_the_catalogue_counts_its_cases():
    """docs/errors.md gives the number of cases; it must be this file's."""
    catalogue = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    assert f"{len(CASES)} bad inputs" in catalogue
    assert all(f"| {case.command} | {case.name} |" in catalogue for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{case.command}: {case.name}" for case in CASES])
def test_bad_input_is_one_line_naming_the_problem(case, world, tmp_path, capsys):
    result = run_main(capsys, *case.args(tmp_path, world))
    assert result.returncode == case.code, (result.stdout, result.stderr)
    if case.code == 2:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
        assert re.search(case.message, result.stderr), result.stderr
    else:
        assert re.search(case.message, result.stdout), result.stdout
    assert "Traceback" not in result.stderr
    written = [path for folder in ("out", "run") for path in (tmp_path / folder).rglob("*") if path.is_file()]
    assert not written, written  # refused before any work: no prediction, no checkpoint


def test_report_escapes_what_it_embeds():
    tag = image_tag(f"clips/{HOSTILE_ID}.gif", HOSTILE_ID, f"{HOSTILE_ID}: raw NME 1.00")
    assert HOSTILE_ID not in tag and "onerror=\"" not in tag and tag.count('"') == 4
    assert html.unescape(tag.split('alt="')[1].split('"')[0]) == HOSTILE_ID


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        io.save_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == mode


def test_frames_without_ground_truth_are_excluded_and_counted(world, tmp_path, capsys):
    videos = with_landmarks(lambda landmarks: landmarks.__setitem__(3, np.nan))(tmp_path, world)
    assert run_main(capsys, "verify", videos).returncode == 0
    item = VideoSet(videos).load("h1")
    scores = score_videos(np.nan_to_num(item.landmarks[None]) + 1.0, item.landmarks[None])
    assert (scores.frames_scored, scores.frames_excluded) == (len(item.landmarks) - 1, 1)
    result = run_main(capsys, "bench", "--model", world.checkpoint, "--videos", videos, "--out", tmp_path / "out", "--rwr-iters", "1", "--filters", "ema", "--slots", "2")
    assert result.returncode == 0 and "Frames without ground truth, excluded from every score: hard 1, easy 0." in result.stdout
    assert (read_leaderboard(tmp_path / "out" / "video_leaderboard.parquet").table["frames_excluded_hard"] == 1).all()


def test_training_checks_every_image_before_the_first_step(world, tmp_path, capsys, monkeypatch):
    stills = first_image_as(lambda path: b"not an image")(tmp_path, world)  # a test image: used only after the epoch
    monkeypatch.setattr("wflwv.train.training_loss", lambda *args: pytest.fail("a training step ran"))
    result = run_main(capsys, "train", "--data", stills, "--out", tmp_path / "run")
    assert result.returncode == 2 and "faces/0.jpg: not a readable image" in result.stderr


def test_a_raw_pickle_checkpoint_is_one_line_without_a_torch_warning(world, tmp_path):
    result = run_cli("diagnose", "--videos", world.videos, "--model", raw_pickle(tmp_path, world))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not a PyTorch checkpoint" in result.stderr, result.stderr


def test_stages_with_failed_items_give_the_summary_then_exit_1(tmp_path, capsys):
    build = tmp_path / "build"
    (build / "videos").mkdir(parents=True)
    (build / "videos" / "x.mp4").write_bytes(b"not a video")
    result = run_main(capsys, "boxes", "--build", build)
    assert result.returncode == 1 and "0 of 1 videos have boxes" in result.stdout
    assert "failed: " in result.stderr and "x.mp4: not a video file" in result.stderr


def test_prediction_file_headers_are_read_before_any_data(world, tmp_path, capsys, monkeypatch):
    """A file claiming 2,000,000 frames, or a member decompressing to 4 GB, is refused from its header: numpy never reads its data."""
    read_array = np.lib.format.read_array

    def read_ground_truth_only(fp, *args, **kwargs):
        assert "preds" not in str(getattr(fp, "name", "")) and not isinstance(fp, zipfile.ZipExtFile), f"the data of {fp} was read"
        return read_array(fp, *args, **kwargs)

    cases = {"the predictions have 2000000": npy_claiming(2_000_000), "decompresses to 4000000000 bytes": npz_decompressing_to(4_000_000_000)}
    commands = {problem: bench_set(prediction_set(make))(make_folder(tmp_path / str(number)), world) for number, (problem, make) in enumerate(cases.items())}
    monkeypatch.setattr(np.lib.format, "read_array", read_ground_truth_only)
    for problem, command in commands.items():
        result = run_main(capsys, *command)
        assert result.returncode == 2 and problem in result.stderr, result.stderr


class ReadOnlyUnder:
    """wflwv.io's tempfile, where creating a file under `folder` fails as on a read-only file system."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()

    def refuse(self, dir) -> None:
        if Path(dir).resolve().is_relative_to(self.folder):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))

    def mkstemp(self, dir, **kwargs):
        self.refuse(dir)
        return tempfile.mkstemp(dir=dir, **kwargs)

    def TemporaryFile(self, dir, **kwargs):  # noqa: N802 (tempfile's name)
        self.refuse(dir)
        return tempfile.TemporaryFile(dir=dir, **kwargs)


def test_report_on_a_read_only_bench_folder_is_one_line_and_writes_nothing(world, tmp_path, capsys, monkeypatch):
    run = Path(shutil.copytree(world.run, tmp_path / "ro"))
    before = sorted(path.relative_to(run) for path in run.rglob("*"))
    monkeypatch.setattr(io, "tempfile", ReadOnlyUnder(run))  # tests run as root, whom chmod does not stop
    result = run_main(capsys, "report", run)
    assert result.returncode == 2 and result.stderr == f"error: {run}: cannot be written (Read-only file system)\n"
    assert sorted(path.relative_to(run) for path in run.rglob("*")) == before


@pytest.mark.parametrize("full", [OSError(errno.ENOSPC, "No space left on device"), OSError("29204 requested and 14832 written")], ids=["ENOSPC", "numpy's short write"])
def test_a_full_disk_ends_in_one_line_leaving_no_half_written_file(full, world, tmp_path, capsys, monkeypatch):
    """The first array written fills the disk halfway through: the OSError of a write (ENOSPC), or of numpy's tofile (no errno)."""
    write_array = np.lib.format.write_array

    def half_then_full(fp, array, *args, **kwargs):
        whole = io_module.BytesIO()
        write_array(whole, array, *args, **kwargs)
        fp.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        raise full

    monkeypatch.setattr(np.lib.format, "write_array", half_then_full)
    result = run_main(capsys, *bench(videos_of, "--slots", "1")(tmp_path, world))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert re.fullmatch(r"error: .*\.np[yz]: cannot be written \(No space left on device.*\); nothing was left half-written\n", result.stderr), result.stderr
    written = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert not [path for path in written if path.name.startswith(io.PARTIAL_PREFIX) or path.suffix in (".npy", ".npz")], written


def test_a_url_that_yt_dlp_refuses_is_a_failed_item(tmp_path, capsys):
    urls = write_bytes(tmp_path / "urls.csv", b"url,licence\nfile:///etc/passwd,cc-by\n")
    result = run_main(capsys, "scrape", "--out", tmp_path / "out", "--urls", urls)
    assert result.returncode == 1 and "failed 1" in result.stdout, (result.stdout, result.stderr)
    assert "failed: file:// URLs are disabled" in result.stderr and "Traceback" not in result.stderr


def test_doctor_counts_the_cookies_yt_dlp_loads(tmp_path, capsys):
    header = "# Netscape HTTP Cookie File\n"
    bad = write_bytes(tmp_path / "bad.txt", (header + ".youtube.com\tTRUE\t/\tTRUE\tnotanumber\tSID\tabc\n").encode())
    good = write_bytes(tmp_path / "good.txt", (header + ".youtube.com\tTRUE\t/\tTRUE\t2000000000\tSID\tabc\n").encode())
    refused = run_main(capsys, "doctor", "--cookies", bad)
    assert f"MISSING cookies file: yt-dlp loads no cookie from {bad} (skipping cookie file entry due to invalid expires at notanumber)" in refused.stdout
    assert refused.returncode == 1 and "WARNING" not in refused.stderr
    assert f"cookies file: {good}, readable, 1 cookies as yt-dlp loads them" in run_main(capsys, "doctor", "--cookies", good).stdout


def make_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_merge_verify_recomputes_every_genuine_row(bench_run, bench_world, world, tmp_path, capsys):
    """--verify accepts what bench wrote: raw, filter and RwR rows of models and prediction sets, recomputed from their sets."""
    for run, videos in ((world.run, world.videos), (bench_run[0], bench_world.videos)):
        result = run_main(capsys, "leaderboard", "merge", run, "--verify", videos, "--out", tmp_path / run.name)
        assert result.returncode == 0, result.stderr
        assert len(pd.read_parquet(tmp_path / run.name / "video_leaderboard.parquet")) == len(pd.read_parquet(run / "video_leaderboard.parquet"))
    other = Path(shutil.copytree(world.videos, tmp_path / "other_videos"))
    moved = np.load(other / "landmarks" / "h1.npy")
    np.save(other / "landmarks" / "h1.npy", moved + 1.0)  # another video set: one video's truth differs
    refused = run_main(capsys, "leaderboard", "merge", world.run, "--verify", other, "--out", tmp_path / "other")
    assert refused.returncode == 2 and "is not the video set the entries of" in refused.stderr
