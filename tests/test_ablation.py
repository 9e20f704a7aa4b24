"""`wflwv study --world-seeds ... --ablation CONFIG`: held-out worlds rendered per world seed, and one table of a config's
equilibrium terms switched off and on, every figure from the runs."""

import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_LDEQ, run_main
from test_families import write_config
from wflwv.bench import BenchSettings
from wflwv.errors import WflwvError
from wflwv.configs import MODELS
from wflwv.models import load_config
from wflwv.report import read_leaderboard
from wflwv import io
from wflwv.study import StudySettings, ablation_configs, rule_choice, run_worlds_study, toml_text, with_ablation
from wflwv.synth import Preset
from wflwv.train import TrainSettings
from wflwv.uncertainty import t_interval

WORLD = Preset(8, 4, 1, (96, 96), (60, 70), (96, 96), (50, 60), (8, 10))  # 8 + 4 stills, one hard and one easy video of 8-10 frames
BENCH = BenchSettings(slots=2, rwr_iters=(1, 2), filters=("ema",), latency_runs=1, adaptive_tol=None)
TINY_TRAIN = {"epochs": 1, "batch_size": 4, "warmup_steps": 1, "loss": "heatmap_nll"}
TERMS = {"warm_start_weight": 1.0, "warm_start_epochs": 1, "spectral_weight": 1.0, "spectral_solve": "warm_start", "spectral_steps": 1,
         "consistency_weight": 1.0, "memory_weight": 1.0, "memory_epochs": 1, "warm_start_augmentation": {"occlusion_prob": 0.5, "low_light_prob": 0.5}}
VARIANTS = ["none", "only-warm_start", "only-spectral", "only-consistency", "only-memory", "all",
            "all-but-warm_start", "all-but-spectral", "all-but-consistency", "all-but-memory"]
WEIGHTS = {"warm_start": "warm_start_weight", "spectral": "spectral_weight", "consistency": "consistency_weight", "memory": "memory_weight"}


def tiny_ldeq(path: Path, train: dict) -> str:
    return write_config(path, "ldeq", load_config("ldeq_demo")["args"] | TINY_LDEQ, TINY_TRAIN | train)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    """The ablation of a tiny LDEQ with the four terms, 2 training seeds on one rendered world: (out, boards)."""
    root = tmp_path_factory.mktemp("ablation")
    settings = StudySettings(seeds=(0, 1), ablation=tiny_ldeq(root / "tiny.toml", TERMS), bench=BENCH, diagnose_pairs=2)
    return root / "out", run_worlds_study((3,), root / "out", settings, preset=WORLD, workers=1)


def kept_terms(variant: str) -> list[str]:
    if variant in ("none", "all"):
        return [] if variant == "none" else list(WEIGHTS)
    return [variant.removeprefix("only-")] if variant.startswith("only-") else [t for t in WEIGHTS if t != variant.removeprefix("all-but-")]


def run_folder(out: Path, seed: int, variant: str) -> Path:
    return out / "worlds" / "3" / "seeds" / str(seed) / f"tiny-{variant}"


def board(out: Path, seed: int, name: str) -> pd.DataFrame:
    return read_leaderboard(out / "worlds" / "3" / "seeds" / str(seed) / "bench" / f"{name}.parquet").table


def test_an_ablation_benches_only_the_rwr_caps_its_table_reads(tmp_path):
    settings = with_ablation(StudySettings(ablation=tiny_ldeq(tmp_path / "tiny.toml", TERMS)), tmp_path / "out")
    assert settings.bench.rwr_iters == (1, 2) and settings.bench.adaptive_tol is None
    assert [Path(config).stem.removeprefix("tiny-") for config in settings.configs] == VARIANTS
    assert StudySettings().bench.rwr_iters == (1, 2, 3)  # a study of configs keeps the bench's own


def test_the_variants_switch_each_term_by_its_weight_and_keep_every_other_key(ablation):
    out, _ = ablation
    base = tomllib.loads((out.parent / "tiny.toml").read_text())["train"]
    for variant in VARIANTS:
        train = tomllib.loads((out / "configs" / f"tiny-{variant}.toml").read_text())["train"]
        kept = kept_terms(variant)
        assert {t for t, key in WEIGHTS.items() if train[key]} == set(kept), variant
        assert {k: v for k, v in train.items() if k not in WEIGHTS.values()} == {k: v for k, v in base.items() if k not in WEIGHTS.values()
                                                                                  and (kept or k != "warm_start_augmentation")}
    histories = {variant: set(pd.read_parquet(run_folder(out, 0, variant) / "history.parquet").columns) for variant in VARIANTS}
    measures = {"disagreement": "consistency", "memory_kept": "memory", "spectral_radius": "spectral"}  # what each term logs
    for variant, columns in histories.items():
        train = tomllib.loads((out / "configs" / f"tiny-{variant}.toml").read_text())["train"]
        assert {measures[m] for m in measures if m in columns} == {t for t in measures.values() if train[WEIGHTS[t]]}, variant


def test_the_ablation_table_has_every_variant_and_figure_from_the_runs(ablation):
    out, boards = ablation
    table = boards["ablation"].table.set_index("model")
    assert list(table.index) == [f"tiny-{v}" for v in VARIANTS] and (table["seeds"] == 2).all()
    figures = ["still_nme", "still_nme_vs_none", "max_spread_hard", "train_seconds"] + [
        f"rwr{i}_{m}_{s}_{what}" for i in (1, 2) for m in ("nmf", "nme") for s in ("hard", "easy") for what in ("change", "vs_filter")]
    assert {f"{f}{part}" for f in figures for part in ("", "_low", "_high")} | {"spread_held", "rwr_held"} <= set(table.columns)
    model = "tiny-all-but-memory"
    per_seed = {
        "still_nme": [board(out, s, "still_leaderboard").set_index("model").loc[model, "nme_full"] for s in (0, 1)],
        "max_spread_hard": [pd.read_parquet(run_folder(out, s, "all-but-memory") / "equilibrium.parquet").set_index("split").loc["hard", "max_spread"] for s in (0, 1)],
        "train_seconds": [pd.read_parquet(run_folder(out, s, "all-but-memory") / "history.parquet")["seconds"].sum() for s in (0, 1)],
        "rwr2_nmf_hard_change": [],
        "rwr1_nme_easy_vs_filter": [],
    }
    for s in (0, 1):
        videos = board(out, s, "video_leaderboard").set_index(["model", "method"])
        per_seed["rwr2_nmf_hard_change"].append(100 * (videos.loc[(model, "RwR (2 it)"), "nmf_hard"] / videos.loc[(model, "raw"), "nmf_hard"] - 1))
        per_seed["rwr1_nme_easy_vs_filter"].append(videos.loc[(model, "RwR (1 it)"), "nme_easy_vs_filter"])
    for figure, values in per_seed.items():
        interval = t_interval(np.array(values))
        assert (table.loc[model, figure], table.loc[model, f"{figure}_low"], table.loc[model, f"{figure}_high"]) == pytest.approx(
            (interval.estimate, interval.low, interval.high), rel=1e-6), figure
    none = [board(out, s, "still_leaderboard").set_index("model").loc["tiny-none", "nme_full"] for s in (0, 1)]
    assert table.loc[model, "still_nme_vs_none"] == pytest.approx(np.mean([100 * (a / b - 1) for a, b in zip(per_seed["still_nme"], none)]))
    assert table.loc["tiny-none", "still_nme_vs_none"] == 0
    assert table.loc[model, "spread_held"] == f"{sum(v <= 1 for v in per_seed['max_spread_hard'])}/2"
    assert list(table["terms"]) == [0, 1, 1, 1, 1, 4, 3, 3, 3, 3]
    text = (out / "ablation.md").read_text()
    assert text.count("| tiny-") == 10 and "t interval of the mean over the runs, one per world and training seed" in text
    chosen, why = rule_choice(boards["ablation"].table)
    assert f"The rule of docs/equilibrium.md picks {chosen}: {why}." in text


def test_the_rule_picks_the_simplest_variant_meeting_every_target_else_the_spread_else_no_term():
    table = pd.DataFrame({"model": ["none", "only-a", "only-b", "all"], "terms": [0, 1, 1, 2],
                          "spread_held": ["8/10", "10/10", "10/10", "10/10"], "rwr_held": ["10/10", "9/10", "10/10", "10/10"],
                          "still_nme_vs_none": [0.0, 1.0, 2.0, 2.5], "train_seconds": [170, 200, 190, 300], "still_nme": [9.3, 9.4, 9.5, 9.6]})
    assert rule_choice(table) == ("only-b", "it meets every target")
    table.loc[2, "still_nme_vs_none"] = 3.5  # only-b misses the still target: the next simplest meeting every one
    assert rule_choice(table) == ("all", "it meets every target")
    table.loc[3, "rwr_held"] = "9/10"  # none meets every target: the fewest terms with the spread, then more runs with RwR's
    table.loc[1, "rwr_held"] = "8/10"
    assert rule_choice(table) == ("only-b", "no variant meets every target; it meets the spread target")
    table["spread_held"] = "9/10"
    assert rule_choice(table) == ("none", "no variant meets the spread target")


def test_ldeq_demos_ablation_switches_its_ablation_table_and_its_none_variant_is_ldeq_demo(tmp_path):
    """ldeq_demo trains no term (the rule's pick); its [ablation] table keeps the four the held-out ablation switched: the
    `none` variant trains as ldeq_demo does, `all` is ldeq_demo with that table in [train] (the config shipped before)."""
    paths = {Path(path).stem: path for path in ablation_configs("ldeq_demo", tmp_path)}
    assert list(paths) == [f"ldeq_demo-{v}" for v in VARIANTS]
    config = load_config("ldeq_demo")
    assert not any(config["train"].get(key) for key in WEIGHTS.values()) and all(config["ablation"][key] for key in WEIGHTS.values())
    settings = {name: dataclasses.asdict(TrainSettings.from_config(load_config(path))) for name, path in paths.items()}
    own = dataclasses.asdict(TrainSettings.from_config(config))
    inert = ("warm_start_epochs", "spectral_", "memory_floor", "memory_epochs")  # read only where their term's weight is not 0
    assert {k: v for k, v in settings["ldeq_demo-none"].items() if not k.startswith(inert)} == {k: v for k, v in own.items() if not k.startswith(inert)}
    shipped_before = {key: value for key, value in config.items() if key != "ablation"} | {"train": config["train"] | config["ablation"]}
    assert load_config(paths["ldeq_demo-all"]) == shipped_before


def test_an_ablation_table_gives_the_variants_its_keys_in_train_would(tmp_path):
    in_train = load_config(tiny_ldeq(tmp_path / "tiny.toml", TERMS))
    apart = {key: value for key, value in in_train.items() if key != "train"} | {"train": TINY_TRAIN, "ablation": TERMS}
    io.save_text(tmp_path / "apart" / "tiny.toml", toml_text(apart))
    written = [ablation_configs(str(tmp_path / folder / "tiny.toml"), tmp_path / folder / "configs") for folder in ("", "apart")]
    assert [Path(path).read_text() for path in written[0]] == [Path(path).read_text() for path in written[1]]
    io.save_text(tmp_path / "bad.toml", toml_text({"ablation": 3} | in_train))
    with pytest.raises(WflwvError, match="'ablation' must be a table of \\[train\\] keys, got 3"):
        ablation_configs(str(tmp_path / "bad.toml"), tmp_path / "bad")


def test_an_ablation_of_a_config_with_one_term_is_refused_before_any_work(tmp_path):
    config = tiny_ldeq(tmp_path / "one.toml", {"warm_start_weight": 1.0})
    with pytest.raises(WflwvError, match="an ablation needs at least two equilibrium terms on"):
        ablation_configs(config, tmp_path / "configs")
    assert not (tmp_path / "configs").exists()


def test_a_study_over_world_seeds_renders_each_world_and_gives_intervals_over_both(tmp_path, capsys):
    config = tiny_ldeq(tmp_path / "plain.toml", {})
    settings = StudySettings(seeds=(0,), configs=(config,), bench=BENCH, diagnose_pairs=1)
    boards = run_worlds_study((1, 2), tmp_path / "out", settings, preset=WORLD, workers=1)
    worlds = [tmp_path / "out" / "worlds" / str(w) / "data" for w in (1, 2)]
    assert (worlds[0] / "videos" / "landmarks" / "hard0000.npy").read_bytes() != (worlds[1] / "videos" / "landmarks" / "hard0000.npy").read_bytes()
    effect = boards["rwr_study"].table
    assert sorted(zip(effect["world"], effect["seed"], effect["method"])) == [(w, 0, f"RwR ({i} it)") for w in (1, 2) for i in (1, 2)]
    row = boards["rwr_over_seeds"].table.set_index("method").loc["RwR (2 it)"]
    pair = effect[effect["method"] == "RwR (2 it)"]["nmf_hard_change"].to_numpy()
    assert row["seeds"] == 2 and (row["nmf_hard_change"], row["nmf_hard_change_low"]) == pytest.approx((pair.mean(), t_interval(pair).low))
    assert set(boards["equilibrium_study"].table["world"]) == {1, 2}
    checkpoint = tmp_path / "out" / "worlds" / "2" / "seeds" / "0" / "plain" / "checkpoint.pth.tar"
    video = next((worlds[1] / "videos" / "videos").iterdir())
    stamps = checkpoint.stat().st_mtime_ns, video.stat().st_mtime_ns
    run_worlds_study((1, 2), tmp_path / "out", settings, preset=WORLD, workers=1)  # a rerun renders and trains nothing
    assert (checkpoint.stat().st_mtime_ns, video.stat().st_mtime_ns) == stamps
    for both in (["--world", worlds[0]], []):
        result = run_main(capsys, "study", *both, "--world-seeds" if both else "--seeds", "1", "--out", tmp_path / "x")
        assert result.returncode == 2 and "give either --world or --world-seeds" in result.stderr
    ignored = {"--preset": "a --world is rendered already", "--configs": "give --configs or --ablation"}  # never silently ignored
    for option, problem in ignored.items():
        extra = ["--preset", "tiny"] if option == "--preset" else ["--ablation", "ldeq_demo", "--configs", "hrnet_demo"]
        result = run_main(capsys, "study", "--world", worlds[0], *extra, "--out", tmp_path / "y")
        assert result.returncode == 2 and problem in result.stderr


def test_a_variant_whose_terms_solve_no_harder_view_drops_its_augmentation(tmp_path):
    terms = {"warm_start_weight": 1.0, "warm_start_epochs": 1, "jacobian_weight": 1.0, "warm_start_augmentation": TERMS["warm_start_augmentation"]}
    paths = {Path(path).stem: path for path in ablation_configs(tiny_ldeq(tmp_path / "jw.toml", terms), tmp_path / "configs")}
    assert sorted(paths) == sorted(f"jw-{v}" for v in ["none", "only-warm_start", "only-jacobian", "all", "all-but-warm_start", "all-but-jacobian"])
    kept = {name: "warm_start_augmentation" in load_config(path)["train"] for name, path in paths.items()}
    assert kept == {"jw-none": False, "jw-only-warm_start": True, "jw-only-jacobian": False, "jw-all": True, "jw-all-but-warm_start": False, "jw-all-but-jacobian": True}
