import json
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from conftest import VIDEO_LENGTHS, face_video, ldeq_checkpoint, write_official_stills, write_precropped_stills, write_wflwv

from wflwv.bench import BenchSettings, padded, run_bench
from wflwv.cli import main
from wflwv.data.videoset import VideoSet
from wflwv.data.wflw import SUBSETS, WflwStills
from wflwv.filters import SavitzkyGolay, sweep
from wflwv.inference import VideoStream, predict_videos
from wflwv.metrics import score_images, score_videos
from wflwv.models import load_checkpoint
from wflwv.stills import predict_stills

FILTER_ROWS = sum(len(sweep(name)) for name in ("ema", "one_euro", "savgol", "kalman"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"OMP_NUM_THREADS": "1"}  # as in conftest: tiny models, shared machine
    return subprocess.run([sys.executable, "-c", "from wflwv.cli import main; main()", *map(str, args)], capture_output=True, text=True, env=environment)


def run_main(capsys, *args: str) -> subprocess.CompletedProcess:
    """The CLI's main() in this process (as run_cli, without the start-up of a new interpreter)."""
    with mock.patch.object(sys, "argv", ["wflwv", *map(str, args)]), pytest.raises(SystemExit) as exit:
        main()
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit.value.code, captured.out, captured.err)


def test_video_leaderboard_gives_every_model_raw_rwr_and_every_filter_setting(bench_run, bench_world):
    out, boards = bench_run
    table = boards["videos"].table
    assert list(dict.fromkeys(table["model"])) == ["ldeq_a", "ldeq_b", "regression"]
    for model in ("ldeq_a", "ldeq_b"):
        methods = list(table[table["model"] == model]["method"])
        assert methods[:1] == ["raw"] and methods[-3:] == ["RwR (1 it)", "RwR (2 it)", "RwR (adaptive, 0.1)"] and len(methods) == 4 + FILTER_ROWS
    regression = table[table["model"] == "regression"]
    assert len(regression) == 1 + FILTER_ROWS and set(regression["curve"]) == {"raw", "ema", "one_euro", "savgol", "kalman"}
    assert (regression["solver_iters_per_frame"] == 0).all()
    assert np.isfinite(table[["nme_hard", "nmf_hard", "nme_easy", "nmf_easy", "fps"]].to_numpy()).all()
    # two seeds, two different models
    raw = table[table["method"] == "raw"].set_index("model")
    assert raw.loc["ldeq_a", "nme_hard"] != raw.loc["ldeq_b", "nme_hard"]
    # RwR: each video's first frame gets the full solve, every other frame at most `it` iterations
    frames, cap = sum(VIDEO_LENGTHS.values()), load_checkpoint(bench_world.checkpoints[0])[0].args.max_iters
    rwr = table[table["model"] == "ldeq_a"].set_index("method")
    for it in (1, 2):
        assert rwr.loc[f"RwR ({it} it)", "solver_iters_per_frame"] <= (it * (frames - 4) + cap * 4) / frames
    assert rwr.loc["RwR (adaptive, 0.1)", "solver_iters_per_frame"] <= rwr.loc["RwR (2 it)", "solver_iters_per_frame"]
    for name in ("video_leaderboard.md", "video_leaderboard.csv", "video_leaderboard.parquet", "per_video.parquet", "nme_vs_nmf.png", "flicker.png", "bench.json"):
        assert (out / name).stat().st_size > 0
    assert len(pd.read_parquet(out / "per_video.parquet")) == len(table) * len(VIDEO_LENGTHS)


def test_a_filter_row_scores_the_online_form_of_the_filter_over_the_raw_predictions(bench_run, bench_world):
    out, boards = bench_run
    table = boards["videos"].table.set_index(["model", "method"])
    regression = json.loads((out / "bench.json").read_text())["models"][2]
    videos, savgol = VideoSet(bench_world.videos), SavitzkyGolay(11, 2)
    raw = {i: np.load(out / regression["runs"]["raw"] / f"{i}.npz")["landmarks"] for i in ("h1", "h2")}
    gt = padded([videos.load_landmarks(i) for i in ("h1", "h2")])
    online = score_videos(padded([savgol.apply_online(raw[i], 30) for i in raw]), gt)
    offline = score_videos(padded([savgol.apply(raw[i], 30) for i in raw]), gt)
    row = table.loc[("regression", savgol.describe())]
    assert row["nmf_hard"] == pytest.approx(100 * online.nmf) and row["nme_hard"] == pytest.approx(100 * online.nme)
    assert row["nmf_hard"] != pytest.approx(100 * offline.nmf)


def test_memory_column_is_zero_for_raw_rows_and_one_minus_alpha_for_an_ema(bench_run):
    table = bench_run[1]["videos"].table.set_index(["model", "method"])
    for model in table.index.get_level_values("model").unique():
        assert table.loc[(model, "raw"), ["memory_hard", "memory_easy"]].tolist() == [0.0, 0.0]
        assert table.loc[(model, "ema(alpha=0.3)"), "memory_hard"] == pytest.approx(0.7)


def test_non_deq_models_run_through_the_slot_scheduler_frame_by_frame(bench_world):
    model, _ = load_checkpoint(bench_world.checkpoints[2])
    frames, _, boxes = face_video(5, 0)

    def run(slots: int):
        streams = [VideoStream(name, iter(frames[:length]), boxes[:length]) for name, length in (("a", 5), ("b", 2), ("c", 4))]
        return {p.id: p for p in predict_videos(model, streams, slots=slots, warm_start=False)}

    alone, batched = run(1), run(2)
    for video_id, prediction in alone.items():
        assert np.allclose(prediction.landmarks, batched[video_id].landmarks, atol=1e-5)
        assert (prediction.iterations == 0).all() and np.isnan(prediction.residuals).all()
    with pytest.raises(ValueError, match="not a DEQ"):
        next(predict_videos(model, [VideoStream("a", iter(frames), boxes)], warm_start=True))


def test_still_leaderboard_scores_the_full_set_and_each_subset(bench_run, bench_world):
    out, boards = bench_run
    table = boards["stills"].table.set_index("model")
    assert list(table.index) == ["ldeq_a", "ldeq_b", "regression"]
    stills = WflwStills(bench_world.stills)
    model, _ = load_checkpoint(bench_world.checkpoints[0])
    faces = stills.faces("test", "blur")
    expected = score_images(predict_stills(model, stills, faces), np.stack([f.landmarks for f in faces]))
    assert table.loc["ldeq_a", "nme_blur"] == pytest.approx(100 * expected.nme)
    assert table.loc["ldeq_a", "fr10_blur"] == pytest.approx(100 * expected.fr10)
    assert table.loc["ldeq_a", "auc10_blur"] == pytest.approx(100 * expected.auc10)
    assert table.loc["ldeq_a", "images_full"] == 6 and table.loc["ldeq_a", "images_blur"] == 2
    assert np.isnan(table.loc["ldeq_a", "nme_makeup"]) and table.loc["ldeq_a", "images_makeup"] == 0
    # the regression model's multiply-adds by hand: a 5x5 stride-4 convolution 3 -> 8 on 64x64 (15x15 outputs), a 128 -> 196 linear head
    assert table.loc["regression", "macs_m"] == pytest.approx((15 * 15 * 8 * 3 * 25 + 128 * 196) / 1e6)
    assert table.loc["regression", "params_m"] == pytest.approx((8 * 3 * 25 + 8 + 128 * 196 + 196) / 1e6)
    assert (table["latency_ms"] > 0).all() and table.loc["ldeq_a", "macs_m"] > table.loc["regression", "macs_m"]
    markdown = boards["stills"].markdown
    assert "inter-ocular" in markdown and "FR10" in markdown and all(f"NME {s}" in markdown for s in SUBSETS)
    for name in ("still_leaderboard.md", "still_leaderboard.csv", "still_leaderboard.parquet", "per_image.parquet", "ced.png"):
        assert (out / name).stat().st_size > 0
    assert set(pd.read_csv(out / "still_leaderboard.csv")["norm"]) == {"interocular"}


def test_still_predictions_do_not_depend_on_the_batch_size(bench_world):
    stills = WflwStills(bench_world.stills)
    model, _ = load_checkpoint(bench_world.checkpoints[2])
    faces = stills.faces("test")
    assert np.allclose(predict_stills(model, stills, faces, batch_size=4), predict_stills(model, stills, faces), atol=1e-5)


def test_the_precropped_layout_scores_as_the_official_one_does(bench_run, bench_world, tmp_path):
    """The pre-cropped set holds the official set's crops at the model's input size: same crops, same NME."""
    _, boards = bench_run
    root = write_precropped_stills(tmp_path / "precropped", size=64)
    board = run_bench(bench_world.checkpoints[:1], tmp_path / "out", stills=root, settings=BenchSettings(latency_runs=1))["stills"]
    official = boards["stills"].table.set_index("model").loc["ldeq_a"]
    row = board.table.iloc[0]
    for column in ("nme_full", "fr10_full", "auc10_full", "nme_blur"):
        assert row[column] == pytest.approx(official[column], abs=1e-3)
    assert np.isnan(row["nme_largepose"]) and row["images_blur"] == 2


def test_bench_rerun_reuses_cached_predictions(bench_world, tmp_path):
    settings = BenchSettings(slots=2, rwr_iters=(1,), filters=("ema",))
    first = run_bench(bench_world.checkpoints[:1], tmp_path, videos=bench_world.videos, settings=settings)["videos"]
    cached = sorted((tmp_path / "predictions").rglob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    second = run_bench(bench_world.checkpoints[:1], tmp_path, videos=bench_world.videos, settings=settings)["videos"]
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    pd.testing.assert_frame_equal(first.table.drop(columns="fps"), second.table.drop(columns="fps"))


def test_cli_benches_a_released_checkpoint_on_wflwv_and_precropped_wflw(tmp_path):
    checkpoint = ldeq_checkpoint(tmp_path / "WFLW_final.pth.tar", seed=2, released=True)
    videos, stills = write_wflwv(tmp_path / "WFLW_V_release"), write_precropped_stills(tmp_path / "WFLW_precropped", size=256)
    result = run_cli("bench", "--model", checkpoint, "--videos", videos, "--stills", stills, "--out", tmp_path / "out", "--rwr-iters", "1", "--adaptive-tol", "0.05", "--filters", "ema")
    assert result.returncode == 0, result.stderr
    assert result.stdout.index("| model | params (M)") < result.stdout.index("| model | method |")
    assert "| WFLW_final | RwR (1 it) |" in result.stdout and "NMF as in the paper" in result.stdout
    assert "| WFLW_final | RwR (adaptive, 0.05) |" in result.stdout
    assert "wflwv report" in result.stdout


def test_cli_refuses_bad_requests_in_one_line(bench_world, tmp_path, capsys):
    checkpoint = bench_world.checkpoints[0]
    nothing = run_main(capsys, "bench", "--model", checkpoint, "--out", tmp_path / "out")
    assert nothing.returncode == 2 and "--videos, --stills or both" in nothing.stderr
    unknown = run_main(capsys, "bench", "--model", checkpoint, "--videos", bench_world.videos, "--filters", "ema,butterworth", "--out", tmp_path / "out")
    assert unknown.returncode == 2 and "butterworth" in unknown.stderr
    (tmp_path / "empty").mkdir()
    layout = run_main(capsys, "bench", "--model", checkpoint, "--stills", tmp_path / "empty", "--out", tmp_path / "out")
    assert layout.returncode == 2 and layout.stderr.count("\n") == 1 and "pre-cropped" in layout.stderr


def test_bench_names_the_landmarks_file_of_the_wrong_shape(bench_world, tmp_path, capsys):
    videos = VideoSet(tmp_path / "videos")
    frames, landmarks, boxes = face_video(5, 0)
    videos.write("v", frames, landmarks, boxes, fps=30)
    np.save(videos.landmarks_path("v"), landmarks[:, :68])
    result = run_main(capsys, "bench", "--videos", tmp_path / "videos", "--model", bench_world.checkpoints[0], "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(videos.landmarks_path("v")) in result.stderr and "98" in result.stderr


def test_still_bench_of_an_official_set_without_test_faces_is_one_line(bench_world, tmp_path, capsys):
    root = write_official_stills(tmp_path / "wflw")
    WflwStills(root).annotation_path("test").write_text("")
    result = run_main(capsys, "bench", "--stills", root, "--model", bench_world.checkpoints[0], "--out", tmp_path / "out")
    assert result.returncode == 2 and "no faces" in result.stderr and "list_98pt_rect_attr_test.txt" in result.stderr
