import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_LDEQ, copy_build, redone_items, run_cli, stage_rows
from test_families import write_config

from wflwv.boxes import BoxSettings, TrackSettings
from wflwv.data.videoset import VideoSet
from wflwv.export import verify
from wflwv.pipeline.run import read_pipeline, run_pipeline
from wflwv.errors import WflwvError
from wflwv.models import load_config

PIPELINE = """
build = "{root}/build"

[world]
out = "{world}"
preset = "tiny"

[scrape]
source = "loopback"

[boxes]
min_face = 0.1

[label]
members = ["{members[0]}", "{members[1]}"]

[split]
k = 1

[export]
out = "{root}/WFLW_V"

[oracle]

[bench]
models = ["{members[0]}"]
out = "{root}/bench"
"""




@pytest.fixture(scope="module")
def pipeline(unlabelled_build, members, tmp_path_factory):
    """The whole chain on the tiny world (rendered by the label tests' fixture), run once by the CLI."""
    root = tmp_path_factory.mktemp("pipeline")
    path = root / "tiny.toml"
    path.write_text(PIPELINE.format(root=root, world=unlabelled_build.parent / "synth", members=members))
    result = run_cli("run", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    return root, path


def test_the_pipeline_builds_a_verified_wflwv_set_from_videos_scraped_over_loopback(pipeline, unlabelled_build):
    root, _ = pipeline
    scraped = pd.read_parquet(root / "build" / "stages" / "scrape" / "manifest.parquet")
    assert list(scraped["status"]) == ["done"] * 4 and set(scraped["licence"].str.contains("Creative Commons")) == {True}
    world, built = VideoSet(unlabelled_build.parent / "synth" / "videos"), VideoSet(root / "build")
    for video_id in world.ids():
        assert built.load(video_id).n_frames == len(world.load_landmarks(video_id))  # whole videos, frame-accurate
    exported = VideoSet(root / "WFLW_V")
    assert len(exported.ids("hard")) == len(exported.ids("easy")) == 1
    assert verify(root / "WFLW_V").problems == []


def test_the_pipeline_checks_the_oracle_and_benches_the_built_set(pipeline):
    root, _ = pipeline
    oracle = pd.read_parquet(root / "build" / "oracle" / "oracle_by_size.parquet")
    assert list(oracle["members"]) == [1, 2] and (oracle[["nme", "nmf"]] > 0).all().all()
    for plot in ("oracle_by_size.png", "split_roc.png"):
        assert (root / "build" / "oracle" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    board = pd.read_parquet(root / "bench" / "video_leaderboard.parquet")
    assert {"raw", "RwR (1 it)", "RwR (2 it)", "RwR (3 it)"} <= set(board["method"])
    assert {"nme_hard", "nmf_easy", "memory_hard"} <= set(board.columns)


def test_a_rerun_does_no_item_twice(pipeline):
    root, path = pipeline
    rows = sorted((root / "build" / "stages").glob("*/rows/*.json"))
    before = {row: row.read_text() for row in rows}
    result = run_cli("run", str(path), "--only", "scrape,boxes,label")
    assert result.returncode == 0, result.stderr[-2000:]
    assert {row: row.read_text() for row in rows} == before


def test_a_pipeline_file_with_an_unknown_table_is_one_line_naming_it(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('build = "b"\n[labels]\n')
    with pytest.raises(WflwvError, match="unknown key 'labels'"):
        read_pipeline(path)
    result = run_cli("run", str(path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and str(path) in result.stderr


def test_paths_in_a_pipeline_file_are_relative_to_it(tmp_path):
    path = tmp_path / "pipelines" / "p.toml"
    path.parent.mkdir()
    path.write_text('build = "../runs/build"\n[export]\nout = "WFLW_V"\n[bench]\nmodels = ["ldeq_demo", "m.pth.tar"]\nout = "/abs/bench"\n')
    spec = read_pipeline(path)
    assert spec["build"] == str(tmp_path / "runs" / "build") and spec["export"]["out"] == str(path.parent / "WFLW_V")
    assert spec["bench"] == {"models": ["ldeq_demo", str(path.parent / "m.pth.tar")], "out": "/abs/bench"}


def test_every_boxes_option_in_a_pipeline_file_reaches_the_stage(tmp_path, monkeypatch):
    path = tmp_path / "p.toml"
    path.write_text('build = "b"\n[boxes]\nbatch_size = 4\nmax_side = 0\nmax_gap = 3\nsmoothing = 0.0\nmin_face = 0.3\ncalibration = "c.json"\n')
    seen = []
    monkeypatch.setattr("wflwv.boxes.run_boxes", lambda build, settings, **options: seen.append(settings) or pd.DataFrame({"status": []}))
    run_pipeline(path, only=("boxes",))
    assert seen == [BoxSettings("cpu", 4, None, 0.3, 0.0, tmp_path / "c.json", TrackSettings(max_gap=3))]


def test_auroc_counts_ties_as_half_and_the_roc_plot_is_written(tmp_path):
    from wflwv.oracle import auroc, plot_roc

    positive = np.array([True, True, False, False])
    assert auroc(np.array([4.0, 3.0, 2.0, 1.0]), positive) == 1.0
    assert auroc(np.array([1.0, 2.0, 3.0, 4.0]), positive) == 0.0
    assert auroc(np.array([1.0, 1.0, 1.0, 1.0]), positive) == 0.5
    plot_roc(np.array([4.0, 2.0, 3.0, 1.0]), positive, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 0


def test_run_force_redoes_the_world_the_members_and_the_bench_models(unlabelled_build, tmp_path):
    """`run --force` redoes every step, training included; a plain rerun redoes nothing."""
    from wflwv.pipeline.run import Build, bench_model
    from wflwv.pipeline.stage import Executor

    world = shutil.copytree(unlabelled_build.parent / "synth", tmp_path / "world")
    config = write_config(tmp_path / "ldeq_tiny.toml", "ldeq", load_config("ldeq_demo")["args"] | TINY_LDEQ, {"batch_size": 8, "warmup_steps": 1, "loss": "heatmap_nll"})
    (tmp_path / "ensemble.toml").write_text(f'[[member]]\nconfig = "{config}"\nseeds = [0]\n')
    path = tmp_path / "pipeline.toml"
    path.write_text(f'build = "{tmp_path}/build"\n[world]\nout = "{world}"\npreset = "tiny"\n[members]\nensemble = "{tmp_path}/ensemble.toml"\nepochs = 1\n')
    video, member = next((world / "videos" / "videos").glob("*.mp4")), tmp_path / "build" / "members" / "ldeq_tiny_seed0" / "checkpoint.pth.tar"

    def written() -> tuple[int, int]:
        return video.stat().st_ino, member.stat().st_ino

    for options, redone in (((), None), ((), False), (("--force",), True)):
        before = written() if redone is not None else None
        result = run_cli("run", str(path), "--only", "world,members", *options)
        assert result.returncode == 0, result.stderr[-2000:]
        if redone is not None:
            assert [new != old for new, old in zip(written(), before)] == [redone, redone]
    spec = read_pipeline(path) | {"bench": {"epochs": 1}}
    trained = bench_model(Build(path, spec, Executor(), "cpu", force=False), str(config))
    first = trained.stat().st_ino
    assert trained == tmp_path / "build" / "bench_models" / "ldeq_tiny" / "checkpoint.pth.tar"
    assert bench_model(Build(path, spec, Executor(), "cpu", force=False), str(config)).stat().st_ino == first
    assert bench_model(Build(path, spec, Executor(), "cpu", force=True), str(config)).stat().st_ino != first


def test_shipped_pipelines_are_found_by_name_and_find_their_inputs_beside_them(tmp_path, monkeypatch):
    from pathlib import Path

    from wflwv.configs import PIPELINES
    from wflwv.pipeline.run import Build, pipeline_path
    from wflwv.pipeline.stage import Executor

    monkeypatch.chdir(tmp_path)
    path = pipeline_path("wflwv")
    build = Build(path, read_pipeline(path), Executor(), "cpu", False)
    assert path == PIPELINES / "wflwv.toml" and build.input_path("scrape", "queries") == PIPELINES / "queries.txt"
    (tmp_path / "queries.txt").write_text("my own query\n")
    assert build.input_path("scrape", "queries") == Path("queries.txt")
    assert build.table("members")["train_splits"] == ["train", "test"] and build.table("boxes")["fit_calibration"] is True


# Options a pipeline sets otherwise: `wflwv run`'s own (--force, --device, --executor, --address), the build folder, the
# members' runs (config, seed, out and stills from [members]), the bootstrap rounds ([boxes] rounds) and the calibration's
# fitting switch ([boxes] fit_calibration); bench's --nmf is `nmf`, its models `models`.
SET_OTHERWISE = {"force", "device", "executor", "address", "build", "data", "config", "out", "seed", "from_landmarks", "round_number",
                 "checkpoints", "nmf_definition"}
RENAMED = {("boxes", "split"): "fit_split", ("export", "layout"): "format"}


@pytest.mark.parametrize("step, command", [("world", "synth"), ("members", "train"), ("scrape", "scrape"), ("boxes", "boxes"), ("label", "label"),
                                           ("split", "split"), ("export", "export"), ("bench", "bench")])
def test_every_option_of_a_steps_command_can_be_set_in_a_pipeline(step, command):
    from wflwv.cli import cli
    from wflwv.pipeline.run import SCHEMA

    keys = set(SCHEMA[step]) | set(SCHEMA[step].get("fetch", {}))
    options = {RENAMED.get((step, p.name), p.name) for p in cli.commands[command].params} - SET_OTHERWISE
    assert sorted(options - keys) == []


def test_the_new_pipeline_options_reach_their_functions(tmp_path, monkeypatch):
    members = tmp_path / "ensemble"
    for name in ("a", "b"):
        (members / name).mkdir(parents=True)
        (members / name / "checkpoint.pth.tar").write_bytes(b"")
    (tmp_path / "info").mkdir()
    path = tmp_path / "p.toml"
    path.write_text('build = "b"\n[members]\nensemble = "ensemble_demo"\nstills = "s"\nbackend = "gloo"\n'
                    '[scrape]\nsource = "info_json"\ninfo_json = "info"\n[scrape.fetch]\nallow_nc = true\ntrust_cc_search = true\n'
                    '[label]\nensemble_dir = "ensemble"\n'
                    '[bench]\npredictions = {mine = "sets/mine"}\nvideos = "v"\nout = "o"\ntry_compile = true\nadaptive_tol = 0\n')
    seen = {}
    monkeypatch.setattr("wflwv.train.train", lambda *args, **options: seen.setdefault("backend", options["backend"]))
    monkeypatch.setattr("wflwv.scrape.read_info_jsons", lambda folder: seen.setdefault("info_json", folder) and [])
    monkeypatch.setattr("wflwv.scrape.scrape", lambda root, candidates, settings, *rest: seen.setdefault("fetch", settings.fetch) is None or pd.DataFrame({"status": []}))
    monkeypatch.setattr("wflwv.scrape.summary", lambda manifest: "")
    monkeypatch.setattr("wflwv.label.label", lambda root, checkpoints, *rest, **options: seen.setdefault("members", checkpoints) and pd.DataFrame({"status": []}))
    monkeypatch.setattr("wflwv.bench.run_bench", lambda models, out, **options: seen.setdefault("bench", options) and {"videos": None})
    monkeypatch.setattr("wflwv.report.video_summary", lambda board: type("Board", (), {"markdown": ""}))
    run_pipeline(path, only=("members", "scrape", "label", "bench"))
    assert seen["backend"] == "gloo" and seen["info_json"] == tmp_path / "info"
    assert seen["fetch"].allow_nc and seen["fetch"].trust_cc_search and not seen["fetch"].allow_nd
    assert seen["members"] == [members / "a" / "checkpoint.pth.tar", members / "b" / "checkpoint.pth.tar"]
    assert seen["bench"]["predictions"] == {"mine": tmp_path / "sets" / "mine"} and seen["bench"]["settings"].try_compile
    assert seen["bench"]["settings"].adaptive_tol is None  # 0: no adaptive row, as --adaptive-tol 0


def test_bootstrap_rounds_keep_their_own_boxes_and_labels_so_a_rerun_redoes_nothing(unlabelled_build, members, tmp_path):
    build = copy_build(unlabelled_build, tmp_path / "build", "videos")
    path = tmp_path / "p.toml"
    path.write_text(f'build = "build"\n[boxes]\nmin_face = 0.1\nrounds = 1\n[label]\nmembers = ["{members[0]}", "{members[1]}"]\nbatch_size = 8\n')
    run_pipeline(path, only=("boxes",))
    detected, final = VideoSet(build / "rounds" / "0"), VideoSet(build)
    video_id = final.ids()[0]
    assert detected.landmarks_path(video_id).is_file() and not final.landmarks_path(video_id).exists()  # round 0's labels, the build's not made yet
    assert not np.allclose(detected.load_boxes(video_id), final.load_boxes(video_id))  # the round's boxes come from the labels
    stages = [build / "rounds" / "0" / "stages" / name for name in ("boxes", "label")] + [build / "stages" / "boxes_round1"]
    before = [stage_rows(stage) for stage in stages]
    assert all(len(rows) == len(final.ids()) for rows in before)
    run_pipeline(path, only=("boxes",))
    assert [redone_items(stage, rows) for stage, rows in zip(stages, before)] == [set(), set(), set()]


def test_a_bench_step_without_models_or_prediction_sets_is_one_error_naming_the_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('build = "b"\n[bench]\nvideos = "v"\nout = "o"\n')
    with pytest.raises(WflwvError, match=r"\[bench\] needs `models` or `predictions`") as error:
        run_pipeline(path, only=("bench",))
    assert error.value.path == str(path)
