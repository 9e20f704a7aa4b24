"""Bad inputs of point schemes, 300-VW folders and landmark methods, each through the CLI's main(): one line
naming the file and the problem, exit status 2 (1 for `verify`'s problems, on stdout). docs/errors.md,
"Point schemes, 300-VW and landmark methods", lists the same cases."""

import argparse
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ldeq_checkpoint, run_main, write_sideways, write_wflwv
from test_vw300 import ibug_points, write_vw300_video
from wflwv import io, methods, schemes
from wflwv.data.video import probe, read_video
from wflwv.data.videoset import VideoSet
from wflwv.data.vw300 import format_pts
from wflwv.methods.export_onnx import export_onnx
from wflwv.models import create_model, load_config, save_checkpoint

POINTS = ibug_points(0, 1)[1][0]  # one face's 68 points


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> argparse.Namespace:
    """A 300-VW folder (two videos, 6 frames, all annotated), a WFLW-V folder, an LDEQ and the demo HRNet's ONNX export."""
    root = tmp_path_factory.mktemp("bad_schemes")
    for seed, video_id in enumerate(("001", "002")):
        write_vw300_video(root / "vw", video_id, 6, list(range(1, 7)), seed)
    torch.manual_seed(0)
    hrnet = root / "hrnet.pth.tar"
    save_checkpoint(hrnet, create_model(load_config("hrnet_demo")))
    return argparse.Namespace(vw=root / "vw", videos=write_wflwv(root / "videos"), checkpoint=ldeq_checkpoint(root / "ldeq.pth.tar", 0), spec=export_onnx(hrnet, root / "onnx"))


def copy(tmp: Path, folder: Path) -> Path:
    return Path(shutil.copytree(folder, tmp / folder.name))


def pts(tmp: Path, world, text: str | bytes) -> list:
    """`bench` on a copy of the 300-VW folder whose 001/annot/000002.pts is `text`."""
    vw = copy(tmp, world.vw)
    path = vw / "001" / "annot" / "000002.pts"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["bench", "--model", world.checkpoint, "--videos", vw, "--out", tmp / "out"]


def vw_bench(tmp: Path, world, change: Callable[[Path], object]) -> list:
    vw = copy(tmp, world.vw)
    change(vw)
    return ["bench", "--model", world.checkpoint, "--videos", vw, "--out", tmp / "out"]


def spec(tmp: Path, world, old: str, new: str) -> list:
    """`predict --method onnx` with the demo HRNet's spec, `old` replaced by `new`."""
    folder = copy(tmp, world.spec.parent)
    path = folder / world.spec.name
    path.write_text(path.read_text().replace(old, new))
    return ["predict", tmp / "any.mp4", "--method", f"onnx:spec={path}"]


def onnx_of(tmp: Path, module: torch.nn.Module, inputs: tuple, names: list[str]) -> list:
    """`predict --method onnx` with a spec'd model exported from `module`."""
    torch.onnx.export(module, inputs, tmp / "m.onnx", dynamo=False, input_names=names)
    (tmp / "m.toml").write_text('model = "m.onnx"\ninput_size = 8\ncrop_scale = 1.2\ncolour = "rgb"\nmean = [0.5, 0.5, 0.5]\nstd = [0.5, 0.5, 0.5]\noutput = "coordinates"\nscheme = "ibug68"\n')
    return ["predict", tmp / "any.mp4", "--method", f"onnx:spec={tmp / 'm.toml'}"]


class TwoInputs(torch.nn.Module):
    def forward(self, image, extra):
        return image.mean(dim=(2, 3))[:, None, :2].repeat(1, 68, 1) + extra


class Coordinates(torch.nn.Module):
    def forward(self, image):
        return image.mean(dim=(2, 3))[:, None, :2].repeat(1, 68, 1)


class NotAMethod:
    def __init__(self, **options):
        pass


def boxes_cut(tmp: Path, world, cut: Callable[[np.ndarray], np.ndarray]) -> list:
    videos = copy(tmp, world.videos)
    path = VideoSet(videos).boxes_path("h1")
    io.save_npy(path, cut(np.load(path)))
    return ["bench", "--method", "dlib68", "--videos", videos, "--out", tmp / "out"]


def sideways_build(tmp: Path, world, monkeypatch) -> list:
    build = copy(tmp, world.videos)
    path = VideoSet(build).video_path("h1")
    write_sideways(path, read_video(path), probe(path).fps)
    return ["export", "--build", build, "--out", tmp / "out", "--format", "300vw"]


def scheme_file(tmp: Path, world, monkeypatch, text: str) -> list:
    """The shipped schemes and a user's five.toml, then `bench --scheme ibug68` (which reads them all)."""
    folder = Path(shutil.copytree(schemes.SCHEMES, tmp / "schemes"))
    (folder / "five.toml").write_text(text)
    monkeypatch.setattr(schemes, "SCHEMES", folder)
    schemes._all_schemes.cache_clear()
    return ["bench", "--model", world.checkpoint, "--scheme", "ibug68", "--videos", world.videos, "--out", tmp / "out"]


def listing_a_missing_video(tmp: Path, world, monkeypatch) -> list:
    vw = copy(tmp, world.vw)
    VideoSet(vw).write_split("hard", ["001", "003"])
    return ["verify", vw]


def not_onnx(tmp: Path, world) -> list:
    command = spec(tmp, world, "", "")
    (tmp / "onnx" / "hrnet.onnx").write_bytes(b"not onnx")
    return command


def node_only(tmp: Path, monkeypatch) -> None:
    """A PATH with Node and nothing else."""
    (tmp / "bin").mkdir()
    (tmp / "bin" / "node").symlink_to(shutil.which("node"))
    monkeypatch.setenv("PATH", str(tmp / "bin"))


def fps_set(tmp: Path, world, fps) -> list:
    """`bench` of the ground truth as a prediction set whose method.json claims `fps`."""
    for video_id in VideoSet(world.videos).ids():
        io.save_npy(tmp / "set" / f"{video_id}.npy", VideoSet(world.videos).load_landmarks(video_id))
    (tmp / "set" / "method.json").write_text(json.dumps({"name": "set", "fps": fps}))
    return ["bench", "--predictions", f"set={tmp / 'set'}", "--videos", world.videos, "--out", tmp / "out"]


def five_points(tmp: Path, world) -> list:
    """`bench` of a prediction set of 5 points per face."""
    for video_id in VideoSet(world.videos).ids():
        io.save_npy(tmp / "five" / f"{video_id}.npy", np.zeros((VideoSet(world.videos).load_landmarks(video_id).shape[0], 5, 2)))
    return ["bench", "--predictions", f"five={tmp / 'five'}", "--videos", world.videos, "--out", tmp / "out"]


SCHEME = 'name = "five"\nn_points = 5\ndescription = "five points"\n[normalisations]\ninterocular = ["0", "1"]\n'


def method_beside(tmp: Path, world, *extra) -> list:
    """`bench --method dlib68` on the world's videos with `extra` arguments: refused before the method runs."""
    return ["bench", "--method", "dlib68", *extra, "--videos", world.videos, "--out", tmp / "out"]


@dataclass(frozen=True)
class Case:
    command: str
    name: str
    args: Callable  # (tmp_path, world, monkeypatch) -> the command line after `wflwv`
    message: str  # the line after "error: " (paths relative to tmp_path, as <tmp>)
    code: int = 2


CASES = [
    # .pts files, read by bench (and verify) on a 300-VW folder
    Case("bench", ".pts not text", lambda t, w, m: pts(t, w, b"version: 1\n\xff\xfe"), "<tmp>/vw/001/annot/000002.pts: not a text .pts file (byte 11)"),
    Case("bench", ".pts without its version line", lambda t, w, m: pts(t, w, format_pts(POINTS).replace("version: 1\n", "")), "<tmp>/vw/001/annot/000002.pts: the header does not start with 'version: 1'"),
    Case("bench", ".pts without n_points", lambda t, w, m: pts(t, w, format_pts(POINTS).replace("n_points:  68\n", "")), "<tmp>/vw/001/annot/000002.pts: the header has no 'n_points: N' line after 'version: 1'"),
    Case("bench", ".pts of 66 points", lambda t, w, m: pts(t, w, format_pts(POINTS).replace("n_points:  68", "n_points:  66")), "<tmp>/vw/001/annot/000002.pts: n_points is 66, expected 68 (iBUG 68 points)"),
    Case("bench", ".pts without '{'", lambda t, w, m: pts(t, w, format_pts(POINTS).replace("{\n", "")), "<tmp>/vw/001/annot/000002.pts: no '{' line after the header"),
    Case("bench", ".pts without '}'", lambda t, w, m: pts(t, w, format_pts(POINTS).replace("}\n", "")), "<tmp>/vw/001/annot/000002.pts: does not end with a '}' line"),
    Case("bench", ".pts with 67 points", lambda t, w, m: pts(t, w, format_pts(POINTS[:67]).replace("n_points:  67", "n_points:  68")), "<tmp>/vw/001/annot/000002.pts: has 67 points between the braces, n_points says 68"),
    Case("bench", ".pts with a NaN", lambda t, w, m: pts(t, w, format_pts(POINTS).replace(format_pts(POINTS).splitlines()[5], "1.0 nan")), "<tmp>/vw/001/annot/000002.pts: line 6: point 3 is not finite"),
    Case("bench", ".pts with three numbers on a line", lambda t, w, m: pts(t, w, format_pts(POINTS).replace(format_pts(POINTS).splitlines()[5], "1 2 3")), "<tmp>/vw/001/annot/000002.pts: line 6: expected two numbers 'x y', found '1 2 3'"),
    Case("bench", ".pts whose eye corners coincide", lambda t, w, m: pts(t, w, format_pts(np.where(np.arange(68)[:, None] == 45, POINTS[36], POINTS))), "<tmp>/vw/001/annot/000002.pts: points 37 and 46 (the outer eye corners) coincide"),
    Case("bench", "300-VW video without annot/", lambda t, w, m: vw_bench(t, w, lambda vw: shutil.rmtree(vw / "001" / "annot")), "<tmp>/vw/001/annot: no such annotation folder (expected <ID>/annot/000001.pts...)"),
    Case("bench", "annotation not named by frame", lambda t, w, m: vw_bench(t, w, lambda vw: (vw / "001" / "annot" / "000002.pts").rename(vw / "001" / "annot" / "2.pts")), "<tmp>/vw/001/annot/2.pts: the name is not a frame number: 6 digits counting from 000001.pts (1-based)"),
    Case("bench", "annotation 000000.pts", lambda t, w, m: vw_bench(t, w, lambda vw: (vw / "001" / "annot" / "000002.pts").rename(vw / "001" / "annot" / "000000.pts")), "<tmp>/vw/001/annot/000000.pts: the name is not a frame number: 6 digits counting from 000001.pts (1-based)"),
    Case("bench", "300-VW folder not named by an ID", lambda t, w, m: vw_bench(t, w, lambda vw: shutil.copytree(vw / "001", vw / "a b")), "<tmp>/vw/a b: the folder name is not a video ID"),
    Case("bench", "annotations only past the video's end", lambda t, w, m: vw_bench(t, w, lambda vw: [p.rename(p.with_name(f"{99 - i:06d}.pts")) for i, p in enumerate(sorted((vw / "001" / "annot").glob("*.pts")))]), "<tmp>/vw/001/annot: no annotation for any of the video's 6 frames"),
    # 300-VW export and verify
    Case("export", "300-VW export of a sideways video", sideways_build, "<tmp>/videos/videos/h1.mp4: has a display rotation, which AVI cannot carry: re-encode it upright first"),
    Case("export", "300-VW export into the build", lambda t, w, m: ["export", "--build", copy(t, w.videos), "--out", t / "videos", "--format", "300vw"], "<tmp>/videos: the export folder must not be the build folder"),
    Case("verify", "300-VW folder listing a missing video", listing_a_missing_video, "<tmp>/vw/003: listed in hard but has no vid.avi", code=1),
    # methods
    Case("predict", "unknown method", lambda t, w, m: ["predict", t / "any.mp4", "--method", "nope"], "unknown method 'nope': known are .*dlib68.*"),
    Case("predict", "option not KEY=VALUE", lambda t, w, m: ["predict", t / "any.mp4", "--method", "onnx:spec"], "--method 'onnx:spec': options are KEY=VALUE, comma-separated (e.g. onnx:spec=model.toml)"),
    Case("predict", "plugin without the contract", lambda t, w, m: m.setitem(methods._registered, "not_a_method", NotAMethod) or ["predict", t / "any.mp4", "--method", "not_a_method"], "method 'not_a_method' is a NotAMethod: it needs name, scheme and predict(frames, boxes)"),
    Case("predict", "extra not installed", lambda t, w, m: m.setitem(sys.modules, "onnxruntime", None) or ["predict", t / "any.mp4", "--method", f"onnx:spec={w.spec}"], "onnx: needs the optional extra 'onnx' (onnxruntime is not installed): pip install 'wflwv[onnx]'"),
    Case("predict", "no Node on the PATH", lambda t, w, m: m.setenv("PATH", str(t)) or ["predict", t / "any.mp4", "--method", "faceapi68"], "faceapi68: needs Node, which is not on the PATH: .*"),
    Case("setup-method", "no npm on the PATH", lambda t, w, m: node_only(t, m) or m.setenv("WFLWV_CACHE", str(t / "cache")) or ["setup-method", "faceapi68"], "faceapi68: needs npm, which is not on the PATH: .*"),
    Case("predict", "method not set up", lambda t, w, m: m.setenv("WFLWV_CACHE", str(t / "cache")) or ["predict", t / "any.mp4", "--method", "mediapipe478"], "<tmp>/cache/mediapipe478/.*: mediapipe478 is not set up here: wflwv setup-method mediapipe478"),
    Case("bench", "--method named as a --predictions set", lambda t, w, m: method_beside(t, w, "--predictions", f"dlib68={t}"),
         "the name 'dlib68' is taken twice (--method and --predictions): give the prediction set another NAME=, or the method other options"),
    Case("bench", "--method twice", lambda t, w, m: method_beside(t, w, "--method", "dlib68"),
         "the name 'dlib68' is taken twice (--method and --method): give the prediction set another NAME=, or the method other options"),
    Case("bench", "--method with an unknown --scheme", lambda t, w, m: method_beside(t, w, "--scheme", "ibug67"), "unknown point scheme 'ibug67', expected one of ibug68, mediapipe478, wflw98"),
    Case("bench", "method on a video with more frames than boxes", lambda t, w, m: boxes_cut(t, w, lambda boxes: boxes[:-2]), "<tmp>/videos/bboxes/h1.npy: video has 7 frames, boxes have 5"),
    Case("bench", "method on a video with fewer frames than boxes", lambda t, w, m: boxes_cut(t, w, lambda boxes: np.concatenate([boxes, boxes[:2]])), "<tmp>/videos/bboxes/h1.npy: video has .* frames, boxes have .*"),
    # ONNX specs and models
    Case("predict", "no such ONNX spec", lambda t, w, m: ["predict", t / "any.mp4", "--method", f"onnx:spec={t / 'no.toml'}"], "<tmp>/no.toml: no such ONNX spec file"),
    Case("predict", "ONNX spec not TOML", lambda t, w, m: spec(t, w, "input_size =", "input_size"), "<tmp>/onnx/hrnet.toml: not a TOML file: .*"),
    Case("predict", "ONNX spec with an unknown key", lambda t, w, m: spec(t, w, "colour", "color"), "<tmp>/onnx/hrnet.toml: unknown keys ['color']"),
    Case("predict", "ONNX spec missing a key", lambda t, w, m: spec(t, w, 'colour = "rgb"\n', ""), "<tmp>/onnx/hrnet.toml: missing keys ['colour']"),
    Case("predict", "ONNX spec with a string size", lambda t, w, m: spec(t, w, "input_size = 64", 'input_size = "64"'), "<tmp>/onnx/hrnet.toml: input_size must be a int, got '64'"),
    Case("predict", "ONNX spec with an unknown output", lambda t, w, m: spec(t, w, '"coordinates"', '"points"'), "<tmp>/onnx/hrnet.toml: output must be one of ('heatmaps', 'coordinates') and colour one of ('rgb', 'bgr')"),
    Case("predict", "ONNX spec with two means", lambda t, w, m: spec(t, w, "mean = [0.485, ", "mean = ["), "<tmp>/onnx/hrnet.toml: mean and std must be three numbers each, std positive"),
    Case("predict", "ONNX spec with size 0", lambda t, w, m: spec(t, w, "input_size = 64", "input_size = 0"), "<tmp>/onnx/hrnet.toml: input_size and crop_scale must be positive"),
    Case("predict", "ONNX spec with an unknown scheme", lambda t, w, m: spec(t, w, '"wflw98"', '"dlib5"'), "<tmp>/onnx/hrnet.toml: unknown point scheme 'dlib5', expected one of ibug68, mediapipe478, wflw98"),
    Case("predict", "ONNX spec naming no file", lambda t, w, m: spec(t, w, '"hrnet.onnx"', '"gone.onnx"'), "<tmp>/onnx/hrnet.toml: its model <tmp>/onnx/gone.onnx does not exist"),
    Case("predict", "ONNX model not ONNX", lambda t, w, m: not_onnx(t, w), "<tmp>/onnx/hrnet.onnx: onnxruntime cannot load it: .*"),
    Case("predict", "ONNX model with two inputs", lambda t, w, m: onnx_of(t, TwoInputs(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 68, 2)), ["image", "extra"]), "<tmp>/m.toml: its model has 2 inputs (image, extra); the onnx method feeds one image input"),
    Case("predict", "ONNX spec of another input size", lambda t, w, m: spec(t, w, "input_size = 64", "input_size = 128"), "<tmp>/onnx/hrnet.toml: input_size 128 does not match the model's input 'image' of shape ['batch', 3, 64, 64] (expected (batch, 3, 128, 128))"),
    Case("predict", "ONNX model of double input", lambda t, w, m: onnx_of(t, Coordinates(), (torch.zeros(1, 3, 8, 8, dtype=torch.float64),), ["image"]), "<tmp>/m.toml: the model's input 'image' is tensor(double); the onnx method feeds tensor(float)"),
    Case("predict", "ONNX spec of another scheme", lambda t, w, m: spec(t, w, '"wflw98"', '"ibug68"'), "<tmp>/onnx/hrnet.toml: output 'coordinates' of scheme ibug68 (68 points) does not match the model's first output of shape ['batch', 98, 2]"),
    Case("export-onnx", "a DEQ", lambda t, w, m: ["export-onnx", w.checkpoint, "--out", t / "onnx"], "<ckpt>: a DEQ's solver loop does not export to ONNX (its iteration count depends on the input)"),
    # point schemes: prediction sets and the videos, --scheme, and a user's scheme file
    Case("bench", "prediction set in a scheme with no map", lambda t, w, m: scheme_file(t, w, m, SCHEME) and five_points(t, w), "<tmp>/five: point schemes five, wflw98 have no common scheme to score on: its landmarks are five, the videos' wflw98"),
    Case("bench", "method.json with a negative fps", lambda t, w, m: fps_set(t, w, -3), "<tmp>/set/method.json: 'fps' must be a positive number of frames per second, got -3"),
    Case("bench", "--scheme no entrant reaches", lambda t, w, m: ["bench", "--model", w.checkpoint, "--scheme", "mediapipe478", "--videos", w.videos, "--out", t / "out"], "<videos>: --scheme mediapipe478: no entrant can be scored on it (the videos are wflw98, the entrants wflw98)"),
    Case("bench", "scheme file: invalid TOML", lambda t, w, m: scheme_file(t, w, m, SCHEME + "[flip\n"), "<tmp>/schemes/five.toml: not a scheme file: invalid TOML (.*)"),
    Case("bench", "scheme file: a key missing", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace('description = "five points"\n', "")), "five.toml: no 'description' (a scheme file gives name, n_points, description, normalisations)"),
    Case("bench", "scheme file: n_points not a number", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace("n_points = 5", 'n_points = "5"')), "five.toml: 'n_points' must be a whole number, got '5'"),
    Case("bench", "scheme file: no interocular", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace("interocular", "interpupil")), "five.toml: normalisations has no 'interocular' (the default normaliser)"),
    Case("bench", "scheme file: a normalisation of three groups", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace('"0", "1"', '"0", "1", "2"')), 'five.toml: normalisation interocular must be two point lists, as ["60", "72"]'),
    Case("bench", "scheme file: points as numbers", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace('"0", "1"', "0, 1")), 'five.toml: normalisation interocular: expected a point list in a string, as "0-16", got 0'),
    Case("bench", "scheme file: a map not a table", lambda t, w, m: scheme_file(t, w, m, SCHEME + '[to]\nibug68 = "0-4"\n'), "five.toml: the map to ibug68 must be a table with a 'points' list"),
    Case("bench", "scheme file: unreadable point", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace('"0", "1"', '"0", "x"')), "five.toml: normalisation interocular: cannot read 'x' as a point, range or sum"),
    Case("bench", "scheme file: a sum outside a map", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace('"0", "1"', '"0", "1+2"')), "five.toml: normalisation interocular: a sum 'a+b' is allowed only in a map"),
    Case("bench", "scheme file: point out of range", lambda t, w, m: scheme_file(t, w, m, SCHEME.replace('"0", "1"', '"0", "7"')), "five.toml: normalisation interocular names a point outside 0-4"),
    Case("bench", "scheme file: flip not a permutation", lambda t, w, m: scheme_file(t, w, m, SCHEME + '[flip]\npermutation = "0-3, 3"\n'), "five.toml: flip is not a permutation of the 5 points"),
    Case("bench", "scheme file: uneven sums in a map", lambda t, w, m: scheme_file(t, w, m, SCHEME + '[to.ibug68]\npoints = "0+1+2, 3+4"\n'), "five.toml: map to ibug68: every sum must have the same number of points, or one that divides it"),
    Case("bench", "scheme file: map of the wrong length", lambda t, w, m: scheme_file(t, w, m, SCHEME + '[to.ibug68]\npoints = "0-4"\n'), "five.toml: its map to ibug68 does not fit the two schemes"),
]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_schemes():
    yield
    schemes._all_schemes.cache_clear()


def test_the_catalogue_counts_its_cases():
    """docs/errors.md's schemes section gives the number of cases and a row for each."""
    catalogue = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    assert f"tests/test_bad_inputs_schemes.py checks these {len(CASES)} bad inputs" in catalogue
    assert all(f"| {case.command} | {case.name} |" in catalogue for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{case.command}: {case.name}" for case in CASES])
def test_bad_input_is_refused_in_one_line(case, world, tmp_path, capsys, monkeypatch):
    args = case.args(tmp_path, world, monkeypatch)
    result = run_main(capsys, *args)
    output = result.stdout if case.code == 1 else result.stderr
    places = {"<tmp>": tmp_path, "<videos>": world.videos, "<ckpt>": world.checkpoint}
    expected = re.escape(case.message).replace(re.escape(".*"), ".*")  # the message is literal but for .* wildcards
    for name, path in places.items():
        expected = expected.replace(re.escape(name), re.escape(str(path)))
    assert result.returncode == case.code, (result.stdout, result.stderr)
    if case.code == 2:
        assert result.stderr.count("\n") == 1 and re.fullmatch(f"error: {expected}\n", result.stderr), result.stderr
    else:
        assert re.search(f"^{expected}$", output, re.MULTILINE), output
    assert not (tmp_path / "out" / "video_leaderboard.parquet").exists()
