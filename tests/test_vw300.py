"""300-VW: .pts files with the real ones' quirks, the layout as a video set, export, verify and bench round trips."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import face_video, ldeq_checkpoint, run_main, write_prediction_file
from wflwv import io
from wflwv.data.crop import box_to_affine
from wflwv.data.video import read_video, write_video
from wflwv.data.videoset import VideoSet
from wflwv.data.vw300 import Vw300Set, format_pts, held_boxes, read_pts
from wflwv.errors import WflwvError
from wflwv.export_vw300 import export_vw300, verify_vw300
from wflwv.metrics import padded, score_videos
from wflwv.models import load_checkpoint
from wflwv.predictions import prediction_file, read_landmarks
from wflwv.report import write_report
from wflwv.schemes import convert
from wflwv.stills import predict_crops


def ibug_points(seed: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A drifting disc video and 68 points on it (WFLW's 98 mapped): (frames, H, W, 3), (frames, 68, 2)."""
    images, landmarks, _ = face_video(frames, seed)
    return images, convert(landmarks, "wflw98", "ibug68")


def real_style_pts(points: np.ndarray) -> bytes:
    """A .pts file as the real ones are written: 1-based coordinates, CRLF, 'n_points:  68', trailing spaces, a blank line after '}'."""
    rows = "".join(f"{x + 1:.3f} {y + 1:.3f} \r\n" for x, y in points)
    return f"version: 1\r\nn_points:  68\r\n{{\r\n{rows}}}\r\n\r\n".encode()


def write_vw300_video(root, video_id: str, frames: int, annotated: list[int], seed: int = 0) -> np.ndarray:
    """<ID>/vid.avi of `frames` frames and a real-style .pts for each 1-based frame number of `annotated`; returns its 68 points."""
    images, points = ibug_points(seed, max(frames, *annotated))
    (root / video_id / "annot").mkdir(parents=True)
    write_video(root / video_id / "source.mp4", images[:frames], 25.0)
    Vw300Set(root).write(video_id, root / video_id / "source.mp4", points[:frames])
    (root / video_id / "source.mp4").unlink()
    for path in (root / video_id / "annot").glob("*.pts"):
        path.unlink()
    for number in annotated:
        (root / video_id / "annot" / f"{number:06d}.pts").write_bytes(real_style_pts(points[number - 1]))
    return points


def test_pts_quirks_are_read_one_based_and_written_back_alike(tmp_path):
    points = ibug_points(0, 1)[1][0]
    path = tmp_path / "000001.pts"
    path.write_bytes(b"\xef\xbb\xbf" + real_style_pts(points).replace(b"version: 1", b"version:\t1"))
    assert np.allclose(read_pts(path), points, atol=5e-4)  # 1-based in the file, 0-based in wflwv
    text = format_pts(points)
    assert text.startswith("version: 1\nn_points:  68\n{\n") and text.endswith("}\n") and len(text.splitlines()) == 72
    assert text.splitlines()[3].split() == [f"{points[0, 0] + 1:.3f}", f"{points[0, 1] + 1:.3f}"]


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda text: text.replace("n_points:  68", "n_points:  66"), "n_points is 66, expected 68 (iBUG 68 points)"),
        (lambda text: text.replace("\n" + text.splitlines()[-2] + "\n", "\n"), "has 67 points between the braces, n_points says 68"),
        (lambda text: text.replace("version: 1\n", ""), "the header does not start with 'version: 1'"),
        (lambda text: text.replace("version: 1", "version: 2"), "the header does not start with 'version: 1'"),
        (lambda text: text.replace("{\n", ""), "no '{' line after the header"),
        (lambda text: text.replace("}\n", ""), "does not end with a '}' line"),
        (lambda text: text.replace(text.splitlines()[5], "1.0 nan"), "line 6: point 3 is not finite"),
        (lambda text: text.replace(text.splitlines()[5], "1.0 2.0 3.0"), "line 6: expected two numbers 'x y', found '1.0 2.0 3.0'"),
    ],
)
def test_a_malformed_pts_is_refused_naming_the_file_and_the_problem(tmp_path, change, problem):
    path = tmp_path / "000001.pts"
    path.write_text(change(format_pts(ibug_points(0, 1)[1][0])))
    with pytest.raises(WflwvError) as error:
        read_pts(path)
    assert str(error.value) == f"{path}: {problem}"


def test_annotations_that_do_not_match_the_frames_are_scored_where_both_exist(tmp_path):
    # 7 frames; annotations for frames 1-2 and 4-6 (none for 3 and 7) and two past the end (8, 9)
    points = write_vw300_video(tmp_path, "114", 7, [1, 2, 4, 5, 6, 8, 9])
    item = Vw300Set(tmp_path).load("114")
    assert item.n_frames == 7 and item.landmarks.shape == (7, 68, 2)
    annotated = ~np.isnan(item.landmarks).any(axis=(1, 2))
    assert annotated.tolist() == [True, True, False, True, True, True, False]
    assert np.allclose(item.landmarks[annotated], points[:7][annotated], atol=5e-4)
    tight = np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1)
    assert np.allclose(item.boxes, tight[[0, 1, 1, 3, 4, 5, 5]], atol=5e-4)  # a frame without points holds the nearest box (ties: the earlier)
    result = verify_vw300(tmp_path)
    assert result.problems == [] and [str(note) for note in result.notes] == [
        f"{tmp_path / '114' / 'annot'}: 7 frames, 7 annotations; frames without an annotation: 2 (first: 3), not scored; annotations past the last frame: 2 (first: 000008.pts), ignored"
    ]
    assert result.summary() == f"{tmp_path}: category1 1 videos (7 frames); 0 problems; 1 note"


def test_verify_refuses_a_video_none_of_whose_frames_is_annotated(tmp_path):
    write_vw300_video(tmp_path, "114", 3, [4, 5])  # annotations only past the last frame: bench would have nothing to score
    (problem,) = verify_vw300(tmp_path).problems
    assert problem.path == str(tmp_path / "114" / "annot") and "no annotation for any of the video's 3 frames" in str(problem)


def test_held_boxes_take_the_nearest_annotated_frame():
    landmarks = np.full((6, 68, 2), np.nan)
    landmarks[2], landmarks[5] = 10.0 + np.arange(136).reshape(68, 2), 50.0 + np.arange(136).reshape(68, 2)
    boxes = held_boxes(landmarks)
    assert boxes[:, 0].tolist() == [10, 10, 10, 10, 50, 50]


def test_splits_are_the_official_test_categories_or_the_folder_lists(tmp_path):
    for seed, video_id in enumerate(["114", "203", "410", "548", "009"]):
        write_vw300_video(tmp_path, video_id, 3, [1, 2, 3], seed)
    assert Vw300Set(tmp_path).splits() == {"category1": ["114", "548"], "category2": ["203"], "category3": ["410"]}
    VideoSet(tmp_path).write_split("hard", ["410", "009"])
    VideoSet(tmp_path).write_split("easy", ["114"])
    assert Vw300Set(tmp_path).splits() == {"hard": ["410", "009"], "easy": ["114"]}
    shutil.rmtree(tmp_path)
    write_vw300_video(tmp_path, "009", 3, [1, 2, 3])
    assert Vw300Set(tmp_path).splits() == {"all": ["009"]}


def test_bench_and_verify_refuse_a_pts_with_the_wrong_point_count_in_one_line(tmp_path, capsys):
    write_vw300_video(tmp_path / "vw", "114", 4, [1, 2, 3, 4])
    bad = tmp_path / "vw" / "114" / "annot" / "000003.pts"
    bad.write_text(format_pts(np.arange(134.0).reshape(67, 2)))
    predictions = tmp_path / "predictions"
    write_prediction_file(predictions / "114.npy", np.zeros((4, 68, 2)))
    result = run_main(capsys, "bench", "--videos", tmp_path / "vw", "--predictions", f"p={predictions}", "--out", tmp_path / "run", "--filters", "none")
    assert result.returncode == 2 and result.stderr == f"error: {bad}: n_points is 67, expected 68 (iBUG 68 points)\n"
    assert not (tmp_path / "run" / "bench.json").exists()
    result = run_main(capsys, "verify", tmp_path / "vw")
    assert result.returncode == 1 and f"{bad}: n_points is 67, expected 68 (iBUG 68 points)" in result.stdout.splitlines()


def test_a_pts_name_that_is_not_a_one_based_frame_number_is_refused(tmp_path):
    write_vw300_video(tmp_path, "114", 2, [1, 2])
    shutil.copy(tmp_path / "114" / "annot" / "000001.pts", tmp_path / "114" / "annot" / "000000.pts")
    with pytest.raises(WflwvError, match=r"000000\.pts: the name is not a frame number: 6 digits counting from 000001\.pts \(1-based\)"):
        Vw300Set(tmp_path).load("114")


@pytest.fixture
def world_videos(unlabelled_build, tmp_path):
    """A copy of the tiny synthetic world's WFLW-V set (98 points, hard and easy lists)."""
    return shutil.copytree(unlabelled_build.parent / "synth" / "videos", tmp_path / "world")


def test_export_verify_and_bench_round_trip_a_world_through_300vw(world_videos, tmp_path, capsys):
    out, source = tmp_path / "300vw", VideoSet(world_videos)
    result = run_main(capsys, "export", "--build", world_videos, "--out", out, "--format", "300vw")
    assert result.returncode == 0, result.stderr
    exported = Vw300Set(out)
    assert exported.splits() == {"hard": source.ids("hard"), "easy": source.ids("easy")}
    truth = {}
    for video_id in source.ids():
        item = exported.load(video_id)
        truth[video_id] = convert(source.load_landmarks(video_id), "wflw98", "ibug68")
        assert sorted(p.name for p in exported.annot_path(video_id).iterdir()) == [f"{n:06d}.pts" for n in range(1, len(truth[video_id]) + 1)]
        assert np.abs(item.landmarks - truth[video_id]).max() <= 5e-4
        assert np.array_equal(read_video(exported.video_path(video_id)), read_video(source.video_path(video_id)))  # remuxed: the same pixels

    # the real set's quirk: one video loses its last annotation and has one past its end
    quirky = source.ids("hard")[0]
    last = len(truth[quirky])
    (exported.annot_path(quirky) / f"{last:06d}.pts").rename(exported.annot_path(quirky) / f"{last + 3:06d}.pts")
    truth[quirky][-1] = np.nan
    result = run_main(capsys, "verify", out)
    assert result.returncode == 0 and result.stdout.splitlines()[1:] == [
        f"note: {exported.annot_path(quirky)}: {last} frames, {last} annotations; frames without an annotation: 1 (first: {last}), not scored; annotations past the last frame: 1 (first: {last + 3:06d}.pts), ignored"
    ]

    rng = np.random.default_rng(0)
    predictions = tmp_path / "predictions"
    guesses = {i: np.nan_to_num(truth[i], nan=100.0) + rng.normal(0, 1.5, truth[i].shape) for i in truth}
    for video_id, points in guesses.items():
        write_prediction_file(predictions / f"{video_id}.npy", points)
    io.save_text(predictions / "method.json", json.dumps({"name": "noisy", "description": "truth + N(0, 1.5 px)", "parameters": {}, "causal": False, "scheme": "ibug68"}))
    result = run_main(capsys, "bench", "--videos", out, "--predictions", f"noisy={predictions}", "--out", tmp_path / "run", "--filters", "none")
    assert result.returncode == 0, result.stderr
    board = json.loads((tmp_path / "run" / "leaderboard_entries.jsonl").read_text().splitlines()[0])["row"]
    for split in ("hard", "easy"):
        ids = source.ids(split)
        expected = score_videos(padded([guesses[i] for i in ids]), padded([truth[i] for i in ids]))  # outer eye corners 36/45
        assert board[f"nme_{split}"] == pytest.approx(100 * expected.nme, rel=1e-3)
        assert board[f"frames_excluded_{split}"] == (1 if split == "hard" else 0)


def test_an_export_rerun_writes_only_the_videos_removed_from_its_folder(world_videos, tmp_path):
    out, rows = tmp_path / "300vw", world_videos / "stages" / "export_300vw"
    export_vw300(world_videos, out)
    written = {path.stem: path.stat().st_mtime_ns for path in (rows / "rows").glob("*.json")}  # a row's text can repeat to the ms
    removed = VideoSet(world_videos).ids("easy")[0]
    shutil.rmtree(out / removed)
    export_vw300(world_videos, out)
    rewritten = {path.stem for path in (rows / "rows").glob("*.json") if written.get(path.stem) != path.stat().st_mtime_ns}
    assert rewritten == {removed} and Vw300Set(out).ids() == VideoSet(world_videos).ids()
    assert verify_vw300(out).problems == []


def test_a_98_point_model_is_benched_on_a_300vw_folder_in_68_points_cropped_from_the_truths_tight_boxes(world_videos, tmp_path):
    from wflwv.bench import BenchSettings, run_bench

    out = tmp_path / "300vw"
    export_vw300(world_videos, out)
    videos = Vw300Set(out)
    checkpoint = ldeq_checkpoint(tmp_path / "ldeq" / "checkpoint.pth.tar", 0)
    settings = BenchSettings(slots=4, rwr_iters=(1,), adaptive_tol=None, filters=(), resamples=100)
    board = run_bench([checkpoint], tmp_path / "run", videos=out, settings=settings)["videos"].table
    raw = board[board["method"] == "raw"].iloc[0]
    assert (raw["scheme"], raw["normalisation"]) == ("ibug68", "interocular")
    manifest = json.loads((tmp_path / "run" / "bench.json").read_text())
    folder = tmp_path / "run" / manifest["models"][0]["runs"]["raw"]
    for split, ids in videos.splits().items():
        predicted = [convert(read_landmarks(prediction_file(folder, i)), "wflw98", "ibug68") for i in ids]
        truth = [videos.load(i).landmarks for i in ids]
        assert raw[f"nme_{split}"] == pytest.approx(100 * score_videos(padded(predicted), padded(truth)).nme, rel=1e-6)
    model, _ = load_checkpoint(checkpoint)
    item = videos.load(ids[0])
    first = predict_crops(model, read_video(item.frames_path)[:1], box_to_affine(item.boxes[0], model.args.im_size)[None])
    assert np.allclose(read_landmarks(prediction_file(folder, ids[0]))[0], first[0], atol=1e-3)  # the first frame's crop: its truth's tight box
    write_report(tmp_path / "run")
    hardest = sorted(path.stem for path in (tmp_path / "run" / "clips").glob("*.gif"))
    assert hardest == sorted(videos.splits()["hard"])  # the report's clips (of the first split) read the 300-VW folder


def test_the_cache_key_of_a_video_changes_when_an_annotation_is_renumbered(tmp_path):
    write_vw300_video(tmp_path, "114", 4, [1, 2, 3])
    before = Vw300Set(tmp_path).input_digests("114")
    (tmp_path / "114" / "annot" / "000003.pts").rename(tmp_path / "114" / "annot" / "000004.pts")  # same contents, another frame
    after = Vw300Set(tmp_path).input_digests("114")
    assert after["video"] == before["video"] and after["boxes"] != before["boxes"]


def test_verify_reports_every_bad_pts_and_bench_would_refuse_the_first(tmp_path):
    points = write_vw300_video(tmp_path, "114", 3, [1, 2, 3])
    closed = points[1].copy()
    closed[45] = closed[36]  # the outer eye corners coincide: no inter-ocular distance
    (tmp_path / "114" / "annot" / "000002.pts").write_text(format_pts(closed))
    (tmp_path / "114" / "annot" / "000003.pts").write_text(format_pts(points[2]).replace("version: 1", "version 1"))
    problems = [str(problem) for problem in verify_vw300(tmp_path).problems]
    assert problems == [
        f"{tmp_path / '114' / 'annot' / '000002.pts'}: points 37 and 46 (the outer eye corners) coincide",
        f"{tmp_path / '114' / 'annot' / '000003.pts'}: the header does not start with 'version: 1'",
    ]
    with pytest.raises(WflwvError, match="000002.pts: points 37 and 46"):
        Vw300Set(tmp_path).load("114")


def test_a_68_point_wflwv_set_exports_its_points_unchanged(unlabelled_build, tmp_path):
    world68 = shutil.copytree(unlabelled_build.parent / "synth" / "videos68", tmp_path / "world68")
    export_vw300(world68, tmp_path / "300vw")
    source, exported = VideoSet(world68), Vw300Set(tmp_path / "300vw")
    for video_id in source.ids():
        assert np.abs(exported.load(video_id).landmarks - source.load_landmarks(video_id)).max() <= 5e-4


def test_a_method_is_benched_on_a_300vw_folder_from_its_truths_tight_boxes(world_videos, tmp_path, capsys):
    out = tmp_path / "300VW"
    assert run_main(capsys, "export", "--build", world_videos, "--out", out, "--format", "300vw").returncode == 0
    result = run_main(capsys, "bench", "--method", "dlib68", "--videos", out, "--out", tmp_path / "bench", "--filters", "none")
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(tmp_path / "bench" / "video_leaderboard.parquet").set_index("model")
    assert table.loc["dlib68", "scheme"] == "ibug68" and 0 < table.loc["dlib68", "nme_hard"] < 50  # dlib found the rendered faces
