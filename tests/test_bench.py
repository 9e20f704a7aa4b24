import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import VIDEO_LENGTHS, face_video, ldeq_checkpoint, run_cli, run_main, write_official_stills, write_precropped_stills, write_wflwv

from wflwv.bench import BenchSettings, run_bench
from wflwv.data.videoset import VideoSet
from wflwv.data.wflw import SUBSETS, WflwStills
from wflwv.filters import SavitzkyGolay, sweep
from wflwv.inference import VideoStream, predict_videos
from wflwv.metrics import padded, score_images, score_videos
from wflwv.models import load_checkpoint
from wflwv.predictions import hold_missing, load_prediction_set, predictions_digest
from wflwv.stills import predict_stills

FILTER_ROWS = sum(len(sweep(name)) for name in ("ema", "one_euro", "savgol", "kalman"))


def test_video_leaderboard_gives_every_model_raw_rwr_and_every_filter_setting(bench_run, bench_world):
    out, boards = bench_run
    table = boards["videos"].table
    assert list(dict.fromkeys(table["model"])) == ["ldeq_a", "ldeq_b", "regression", "noisy_truth"]
    for model in ("ldeq_a", "ldeq_b"):
        methods = list(table[table["model"] == model]["method"])
        assert methods[:1] == ["raw"] and methods[-3:] == ["RwR (1 it)", "RwR (2 it)", "RwR (adaptive, 0.1)"] and len(methods) == 4 + FILTER_ROWS
    regression = table[table["model"] == "regression"]
    assert len(regression) == 1 + FILTER_ROWS and set(regression["curve"]) == {"raw", "ema", "one_euro", "savgol", "kalman"}
    assert (regression["solver_iters_per_frame"] == 0).all()
    assert np.isfinite(table[["nme_hard", "nmf_hard", "nme_easy", "nmf_easy"]].to_numpy()).all()
    assert np.isfinite(table[table["model"] != "noisy_truth"]["fps"]).all()
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
    raw = {i: np.load(out / regression["runs"]["raw"] / f"{i}.npy") for i in ("h1", "h2")}
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
    cached = sorted((tmp_path / "cache").glob("*.npz"))
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
    np.save(videos.landmarks_path("v"), landmarks[:, :67])  # no scheme has 67 points
    result = run_main(capsys, "bench", "--videos", tmp_path / "videos", "--model", bench_world.checkpoints[0], "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(videos.landmarks_path("v")) in result.stderr and "68 or 98 or 478 points" in result.stderr


def test_still_bench_of_an_official_set_without_test_faces_is_one_line(bench_world, tmp_path, capsys):
    root = write_official_stills(tmp_path / "wflw")
    WflwStills(root).annotation_path("test").write_text("")
    result = run_main(capsys, "bench", "--stills", root, "--model", bench_world.checkpoints[0], "--out", tmp_path / "out")
    assert result.returncode == 2 and "no faces" in result.stderr and "list_98pt_rect_attr_test.txt" in result.stderr


@pytest.fixture(scope="module")
def other_videos(tmp_path_factory):
    """A second video set with the IDs and lengths of bench_world's, and other faces, motion and boxes."""
    videos = VideoSet(tmp_path_factory.mktemp("other") / "wflwv")
    for seed, (video_id, length) in enumerate(VIDEO_LENGTHS.items(), start=10):
        videos.write(video_id, *face_video(length, seed), fps=30)
    videos.write_split("hard", ["h1", "h2"])
    videos.write_split("easy", ["e1", "e2"])
    return videos.root


def test_a_prediction_set_is_scored_like_a_model_with_every_filter_and_its_missing_frames_held(bench_run, bench_world):
    out, boards = bench_run
    table = boards["videos"].table
    rows = table[table["model"] == "noisy_truth"].set_index("method")
    assert len(rows) == 1 + FILTER_ROWS and set(rows["curve"]) == {"raw", "ema", "one_euro", "savgol", "kalman"}
    assert not rows["causal"].any() and rows["fps"].isna().all() and rows["solver_iters_per_frame"].isna().all()
    videos = VideoSet(bench_world.videos)
    landmarks = load_prediction_set(bench_world.noisy_truth, {i: n for i, n in VIDEO_LENGTHS.items()})
    expected = score_videos(padded([hold_missing(landmarks[i]) for i in ("h1", "h2")]), padded([videos.load_landmarks(i) for i in ("h1", "h2")]))
    assert rows.loc["raw", "nme_hard"] == pytest.approx(100 * expected.nme) and rows.loc["raw", "nmf_hard"] == pytest.approx(100 * expected.nmf)
    assert rows.loc["raw", "missing_hard"] == pytest.approx(100 * 2 / 12) and rows.loc["raw", "missing_easy"] == pytest.approx(100 * 2 / 12)
    entries = [json.loads(line) for line in (out / "leaderboard_entries.jsonl").read_text().splitlines()]
    entry = next(e for e in entries if (e["model"], e["method"]) == ("noisy_truth", "raw"))
    assert entry["prediction_set"] == predictions_digest(landmarks) and entry["wflwv_version"] and len(entries) == len(table)
    assert len({e["video_set"] for e in entries}) == 1 and entry["row"]["nme_hard_low"] <= entry["row"]["nme_hard"]


def test_every_figure_has_its_interval_and_paired_differences(bench_run):
    boards = bench_run[1]
    table = boards["videos"].table
    for split in ("hard", "easy"):
        for metric in ("nme", "nmf"):
            figure = f"{metric}_{split}"
            assert (table[f"{figure}_low"] <= table[figure] + 1e-9).all() and (table[figure] <= table[f"{figure}_high"] + 1e-9).all()
            assert (table[f"{figure}_high"] > table[f"{figure}_low"]).all()
            raw = table[table["method"] == "raw"]
            assert (raw[f"{figure}_vs_raw"] == 0).all() and (raw[f"{figure}_vs_raw_p"] == 0).all()
            # the difference is the difference of the figures (means over the same videos)
            by_method = table.set_index(["model", "method"])
            difference = by_method[figure] - by_method.xs("raw", level="method")[figure].reindex(by_method.index.get_level_values("model")).to_numpy()
            assert np.allclose(by_method[f"{figure}_vs_raw"], difference)
    summary = table.set_index(["model", "method"])
    for model in ("ldeq_a", "regression", "noisy_truth"):
        rows = summary.loc[model]
        best = rows[~rows["curve"].isin(["raw", "rwr"])].eval("nme_hard + nmf_hard").idxmin()
        assert rows.loc[best, "nmf_hard_vs_filter"] == 0 and (rows["nmf_hard_vs_filter_p"].between(0, 1)).all()
    stills = boards["stills"].table
    assert (stills["nme_full_low"] < stills["nme_full"]).all() and (stills["nme_full"] < stills["nme_full_high"]).all()
    assert "[" in boards["stills"].markdown and "bootstrap interval" in boards["videos"].markdown


def test_a_model_run_re_scores_as_a_prediction_set_without_any_model(bench_run, bench_world, tmp_path, capsys):
    out, boards = bench_run
    regression = json.loads((out / "bench.json").read_text())["models"][2]
    folder = out / regression["runs"]["raw"]
    assert json.loads((folder / "method.json").read_text())["causal"] is True
    result = run_main(capsys, "bench", "--predictions", f"copy={folder}", "--videos", bench_world.videos, "--filters", "none", "--out", tmp_path / "copy")
    assert result.returncode == 0, result.stderr
    assert "| copy | raw |" in result.stdout
    copy = pd.read_parquet(tmp_path / "copy" / "video_leaderboard.parquet")
    original = boards["videos"].table.set_index(["model", "method"]).loc[("regression", "raw")]
    assert len(copy) == 1
    for column in ("nme_hard", "nmf_hard", "nme_easy", "nmf_easy", "nme_hard_low", "nmf_easy_high"):
        assert copy.loc[0, column] == pytest.approx(original[column])
    # the two runs merge into one table; a run on another video set is refused in one line
    merged = run_main(capsys, "leaderboard", "merge", out, tmp_path / "copy", "--out", tmp_path / "merged")
    assert merged.returncode == 0, merged.stderr
    table = pd.read_parquet(tmp_path / "merged" / "video_leaderboard.parquet")
    assert len(table) == len(boards["videos"].table) + 1 and ("copy", "raw") in set(zip(table["model"], table["method"]))


def test_merge_refuses_entries_of_another_video_set(bench_run, bench_world, other_videos, tmp_path, capsys):
    other = run_main(capsys, "bench", "--predictions", f"noisy={bench_world.noisy_truth}", "--videos", other_videos, "--filters", "", "--out", tmp_path / "other")
    assert other.returncode == 0, other.stderr
    refused = run_main(capsys, "leaderboard", "merge", bench_run[0], tmp_path / "other", "--out", tmp_path / "merged")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "leaderboard_entries.jsonl" in refused.stderr and "another video set" in refused.stderr
    assert not list((tmp_path / "merged").glob("*"))  # the folder is tried when the command line is read, and left empty


def test_two_video_sets_with_the_same_ids_benched_into_one_out_get_their_own_scores(bench_world, other_videos, tmp_path):
    settings = BenchSettings(slots=2, filters=())
    checkpoint = bench_world.checkpoints[2:]
    first = run_bench(checkpoint, tmp_path / "out", videos=bench_world.videos, settings=settings)["videos"].table
    second = run_bench(checkpoint, tmp_path / "out", videos=other_videos, settings=settings)["videos"].table
    alone = run_bench(checkpoint, tmp_path / "alone", videos=other_videos, settings=settings)["videos"].table
    columns = ["nme_hard", "nmf_hard", "nme_easy", "nmf_easy"]
    assert np.allclose(second[columns], alone[columns]) and not np.allclose(second[columns], first[columns])
    assert len(list((tmp_path / "out" / "cache").glob("*.npz"))) == 2 * len(VIDEO_LENGTHS)
    # other boxes for one video: its prediction is recomputed, not read
    videos = VideoSet(other_videos)
    np.save(videos.boxes_path("h1"), videos.load_boxes("h1") + 2.0)
    moved = run_bench(checkpoint, tmp_path / "out", videos=other_videos, settings=settings)["videos"].table
    assert len(list((tmp_path / "out" / "cache").glob("*.npz"))) == 2 * len(VIDEO_LENGTHS) + 1
    assert moved.loc[0, "nme_hard"] != second.loc[0, "nme_hard"] and moved.loc[0, "nme_easy"] == second.loc[0, "nme_easy"]


def test_a_corrupt_cached_prediction_is_recomputed(bench_world, tmp_path):
    settings = BenchSettings(slots=2, filters=())
    first = run_bench(bench_world.checkpoints[2:], tmp_path, videos=bench_world.videos, settings=settings)["videos"].table
    cached = sorted((tmp_path / "cache").glob("*.npz"))
    cached[0].write_bytes(b"PK\x03\x04 truncated")
    again = run_bench(bench_world.checkpoints[2:], tmp_path, videos=bench_world.videos, settings=settings)["videos"].table
    # the recomputed video runs alone, in other batches than the first time: equal to float rounding
    pd.testing.assert_frame_equal(first.drop(columns="fps"), again.drop(columns="fps"), rtol=1e-4, atol=1e-6)
    assert sorted(np.load(cached[0]).files) == ["iterations", "landmarks", "residuals", "seconds"]


def test_bench_refuses_a_prediction_set_without_a_video_in_one_line_before_any_model_runs(bench_world, tmp_path, capsys):
    folder = shutil.copytree(bench_world.noisy_truth, tmp_path / "set")
    (folder / "h2.npz").unlink()
    result = run_main(capsys, "bench", "--model", bench_world.checkpoints[0], "--predictions", f"mine={folder}", "--videos", bench_world.videos, "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert str(folder / "h2.npy") in result.stderr and "no predictions for video 'h2'" in result.stderr
    assert not (tmp_path / "out" / "cache").exists()
    stills_only = run_main(capsys, "bench", "--predictions", f"mine={folder}", "--stills", bench_world.stills, "--out", tmp_path / "out")
    assert stills_only.returncode == 2 and "--videos" in stills_only.stderr
