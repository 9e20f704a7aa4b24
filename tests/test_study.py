import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_LDEQ, write_wflwv
from test_bench import run_main
from test_families import write_config
from test_train import still_set
from wflwv.bench import BenchSettings
from wflwv.equilibrium import diagnose
from wflwv.errors import WflwvError
from wflwv.models import load_checkpoint, load_config
from wflwv.report import read_leaderboard
from wflwv.study import StudySettings, run_study

BENCH = BenchSettings(slots=4, rwr_iters=(1,), filters=("ema",), latency_runs=1)
TINY_TRAIN = {"epochs": 1, "batch_size": 4, "warmup_steps": 1, "loss": "heatmap_nll"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two seeds of a tiny LDEQ and a tiny regression model on a world of discs: (world, out, settings, boards)."""
    root = tmp_path_factory.mktemp("study")
    world = root / "world"
    still_set(world / "stills", {"train": 8, "test": 4})
    write_wflwv(world / "videos")
    configs = (
        write_config(root / "ldeq_tiny.toml", "ldeq", load_config("ldeq_demo")["args"] | TINY_LDEQ, TINY_TRAIN),
        write_config(root / "regression_tiny.toml", "tiny_regression", {"im_size": 64}, TINY_TRAIN | {"loss": "mse"}),
    )
    settings = StudySettings(seeds=(0, 1), configs=configs, bench=BENCH, diagnose_pairs=2)
    return world, root / "out", settings, run_study(world, root / "out", settings)


def seed_board(out, seed: int, name: str) -> pd.DataFrame:
    return read_leaderboard(out / "seeds" / str(seed) / "bench" / f"{name}.parquet").table.set_index(["model", "method"] if name == "video_leaderboard" else ["model"])


def seed_board_columns(out) -> dict:
    return read_leaderboard(out / "seeds" / "0" / "bench" / "video_leaderboard.parquet").columns


def test_the_video_study_gives_mean_and_sd_over_the_seeds_benches(study):
    _, out, _, boards = study
    table = boards["video_study"].table.set_index(["model", "method"])
    seeds = [seed_board(out, seed, "video_leaderboard") for seed in (0, 1)]
    assert set(table.index) == set(seeds[0].index) and (table["seeds"] == 2).all()
    pair = np.stack([s.loc[table.index, "nmf_hard"] for s in seeds])
    np.testing.assert_allclose(table["nmf_hard_mean"], pair.mean(axis=0))
    np.testing.assert_allclose(table["nmf_hard_sd"], pair.std(axis=0, ddof=1))
    first = table.iloc[0]
    assert first["nme_easy"] == f"{first['nme_easy_mean']:.3f} ± {first['nme_easy_sd']:.3f}"
    assert "± " in (out / "video_study.md").read_text() and (out / "still_study.parquet").is_file()
    assert set(boards["video_study"].columns) - {"curve", "seeds"} == set(seed_board_columns(out))  # the per-seed board's columns, as mean ± sd
    stills = boards["still_study"].table.set_index("model")
    np.testing.assert_allclose(stills["nme_full_mean"], np.mean([seed_board(out, s, "still_leaderboard").loc[stills.index, "nme_full"] for s in (0, 1)], axis=0))


def test_the_rwr_table_gives_each_seeds_change_against_its_cold_start(study):
    _, out, _, boards = study
    table = boards["rwr_study"].table
    assert sorted(zip(table["seed"], table["method"])) == [(0, "RwR (1 it)"), (0, "RwR (adaptive, 0.1)"), (1, "RwR (1 it)"), (1, "RwR (adaptive, 0.1)")]
    assert set(table["model"]) == {"ldeq_tiny"}  # the regression model is no DEQ
    changes = {f"{m}_{split}_change" for m in ("nmf", "nme") for split in ("hard", "easy")}
    assert set(table.columns) == {"seed", "model", "method", "solver_iters_per_frame"} | changes  # not the intervals' or differences' columns
    row = table[(table["seed"] == 1) & (table["method"] == "RwR (1 it)")].iloc[0]
    board = seed_board(out, 1, "video_leaderboard")
    for metric, split in [("nmf", "hard"), ("nme", "easy")]:
        rwr, cold = board.loc[("ldeq_tiny", "RwR (1 it)"), f"{metric}_{split}"], board.loc[("ldeq_tiny", "raw"), f"{metric}_{split}"]
        assert row[f"{metric}_{split}_change"] == pytest.approx(100 * (rwr / cold - 1))


def test_rwr_against_the_best_filter_gives_the_benchs_paired_differences_per_seed(study):
    _, out, _, boards = study
    table = boards["rwr_vs_filter"].table
    assert sorted(zip(table["seed"], table["method"])) == [(0, "RwR (1 it)"), (0, "RwR (adaptive, 0.1)"), (1, "RwR (1 it)"), (1, "RwR (adaptive, 0.1)")]
    board = seed_board(out, 0, "video_leaderboard").reset_index()
    ldeq = board[board["model"] == "ldeq_tiny"]
    filtered = ldeq[~ldeq["curve"].isin(["raw", "rwr"])]
    best = filtered.loc[(filtered["nme_hard"] + filtered["nmf_hard"]).idxmin()]
    row = table[(table["seed"] == 0) & (table["method"] == "RwR (1 it)")].iloc[0]
    assert row["best_filter"] == best["method"]
    rwr = ldeq[ldeq["method"] == "RwR (1 it)"].iloc[0]
    assert row["nmf_hard_vs_filter"] == pytest.approx(rwr["nmf_hard"] - best["nmf_hard"], abs=1e-9)
    assert row["nmf_hard_vs_filter_low"] <= row["nmf_hard_vs_filter"] <= row["nmf_hard_vs_filter_high"] and 0 <= row["nmf_hard_vs_filter_p"] <= 1


def test_rwr_over_seeds_gives_the_mean_of_each_seeds_change_and_difference_with_a_t_interval(study):
    _, out, _, boards = study
    table = boards["rwr_over_seeds"].table.set_index("method")
    per_seed = boards["rwr_study"].table.merge(boards["rwr_vs_filter"].table, on=["seed", "model", "method"])
    assert set(table.index) == {"RwR (1 it)", "RwR (adaptive, 0.1)"} and (table["seeds"] == 2).all()
    for column in ("nmf_hard_change", "nme_easy_vs_filter"):
        pair = per_seed[per_seed["method"] == "RwR (1 it)"][column].to_numpy()
        half = 12.7062047 * pair.std(ddof=1) / np.sqrt(2)  # Student's t, 1 degree of freedom, 95%
        row = table.loc["RwR (1 it)"]
        assert (row[column], row[f"{column}_low"], row[f"{column}_high"]) == pytest.approx((pair.mean(), pair.mean() - half, pair.mean() + half), rel=1e-6, abs=1e-6)
    text = (out / "rwr_over_seeds.md").read_text()
    assert f"{table.loc['RwR (1 it)', 'nmf_hard_change']:+.1f} [" in text and "t interval of the mean over the training seeds" in text and "bootstrap" not in text


def test_the_equilibrium_table_gives_each_seeds_ldeq_diagnosed_on_the_videos(study):
    world, out, settings, boards = study
    table = boards["equilibrium_study"].table
    assert set(zip(table["seed"], table["model"])) == {(0, "ldeq_tiny"), (1, "ldeq_tiny")}  # the regression model has no fixed point
    model, _ = load_checkpoint(out / "seeds" / "1" / "ldeq_tiny" / "checkpoint.pth.tar")
    expected = diagnose(world / "videos", model, settings.diagnose_pairs).set_index("split")
    measured = table[table["seed"] == 1].set_index("split")
    assert set(measured.index) == {"hard", "easy"}
    np.testing.assert_allclose(measured.loc[expected.index, ["max_spread", "contraction"]], expected[["max_spread", "contraction"]], rtol=1e-5)
    assert "max spread" in (out / "equilibrium_study.md").read_text()


def test_only_the_tables_with_intervals_say_what_their_intervals_are(study):
    _, out, _, boards = study
    for name in ("video_study", "still_study", "rwr_study", "equilibrium_study"):  # mean ± sd or one figure per seed
        assert "[low, high]" not in boards[name].caption and "[" not in "".join(map("".join, boards[name].cells()))
    assert "bootstrap interval, resampling the videos" in boards["rwr_vs_filter"].caption
    assert "t interval of the mean over the training seeds" in (out / "rwr_over_seeds.md").read_text()


def test_an_equilibrium_table_of_another_diagnose_is_measured_again(study):
    world, out, settings, _ = study
    path = out / "seeds" / "1" / "ldeq_tiny" / "equilibrium.parquet"
    fresh, stamp = pd.read_parquet(path), path.stat().st_mtime_ns
    run_study(world, out, settings)
    assert path.stat().st_mtime_ns == stamp  # the same checkpoint, pairs and solver caps: kept
    fresh.drop(columns=["key", "re_solved"]).to_parquet(path)  # as an older diagnose wrote it
    boards = run_study(world, out, settings)
    assert pd.read_parquet(path).equals(fresh) and boards["equilibrium_study"].table["re_solved"].notna().all()
    run_study(world, out, StudySettings(seeds=(1,), configs=settings.configs, bench=BENCH, diagnose_pairs=3))
    assert set(pd.read_parquet(path)["pairs"]) == {3 * pairs for pairs in fresh["pairs"] // 2}  # other pairs per video: measured again
    run_study(world, out, settings)  # and back, for the tests that follow


def test_a_rerun_skips_finished_seeds_and_force_redoes_them(study, capsys):
    world, out, settings, _ = study
    checkpoint = out / "seeds" / "0" / "ldeq_tiny" / "checkpoint.pth.tar"
    manifest, stamp = pd.read_parquet(out / "manifest.parquet"), checkpoint.stat().st_mtime_ns
    assert list(manifest["seed"]) == [0, 1] and manifest["seed"].dtype.kind == "i" and (manifest["train_seconds"] > 0).all()
    capsys.readouterr()
    run_study(world, out, settings)
    assert checkpoint.stat().st_mtime_ns == stamp and pd.read_parquet(out / "manifest.parquet").equals(manifest)
    assert "seed" not in capsys.readouterr().out  # nothing done, nothing said
    run_study(world, out, StudySettings(seeds=(0,), configs=settings.configs, bench=BENCH), force=True)
    assert checkpoint.stat().st_mtime_ns > stamp
    said = " ".join(capsys.readouterr().out.split())  # rich folds long lines
    assert re.search(rf"{re.escape(str(out))}: seed 0 done, {len(settings.configs)} configs trained in \d+ min and benched in \d+ min; 1 of 1 seeds done", said)
    assert list(pd.read_parquet(out / "manifest.parquet")["seed"]) == [1, 0]


def test_a_seed_is_studied_again_when_a_file_of_the_world_changes(study, tmp_path):
    world, out = tmp_path / "world", tmp_path / "out"
    shutil.copytree(study[0], world)
    shutil.copytree(study[1], out)
    checkpoint = out / "seeds" / "0" / "ldeq_tiny" / "checkpoint.pth.tar"
    stamp, manifest = checkpoint.stat().st_mtime_ns, pd.read_parquet(out / "manifest.parquet")
    nme = ["nme_hard", "nme_easy"]
    boards = {seed: seed_board(out, seed, "video_leaderboard")[nme] for seed in (0, 1)}
    truth = sorted((world / "videos" / "landmarks").glob("*.npy"))[0]
    np.save(truth, np.load(truth) + 2.0)  # the ground truth of one video moves by 2 pixels
    run_study(world, out, study[2])
    again = pd.read_parquet(out / "manifest.parquet")
    assert list(again["seed"]) == [0, 1] and not set(again["key"]) & set(manifest["key"])
    assert checkpoint.stat().st_mtime_ns == stamp  # the same training run: nothing to redo
    before, after = (dict(zip(table["seed"], table["train_seconds"])) for table in (manifest, again))
    assert after == before  # what that training took, not the rerun's look at it
    assert not any(seed_board(out, seed, "video_leaderboard")[nme].equals(boards[seed]) for seed in (0, 1))  # benched again


def test_a_changed_config_sends_its_seeds_to_training_which_refuses_another_run(study, tmp_path):
    world, out, settings, _ = study
    shutil.copytree(out, tmp_path / "out")
    ldeq, *others = settings.configs
    changed = write_config(tmp_path / Path(ldeq).name, "ldeq", load_config(ldeq)["args"], TINY_TRAIN | {"lr": 0.5})
    with pytest.raises(WflwvError, match=r"checkpoint is of another run: config.train.lr .* use --force"):
        run_study(world, tmp_path / "out", StudySettings(seeds=(0,), configs=(changed, *others), bench=BENCH, diagnose_pairs=2))


def test_a_study_needs_a_world(tmp_path):
    (tmp_path / "world" / "stills").mkdir(parents=True)
    with pytest.raises(WflwvError, match="a study needs a world with stills/ and videos/"):
        run_study(tmp_path / "world", tmp_path / "out")


def test_cli_refuses_a_world_without_videos_in_one_line(tmp_path, capsys):
    (tmp_path / "world" / "stills").mkdir(parents=True)
    result = run_main(capsys, "study", "--world", tmp_path / "world", "--out", tmp_path / "out", "--seeds", "0")
    assert result.returncode == 2 and result.stderr == f"error: {tmp_path / 'world' / 'videos'}: a study needs a world with stills/ and videos/ (wflwv synth)\n"
    assert not any((tmp_path / "out").iterdir())  # the folder is tried when the command line is read, and left empty
