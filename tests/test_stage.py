import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pytest

from wflwv import io
from wflwv.errors import WflwvError
from wflwv.pipeline.stage import Executor, Stage, run_stage


def square(out, calls, item: str) -> dict:
    """Writes out/<item>.npy; items named bad* fail; every call is logged to the `calls` file."""
    with open(calls, "a") as log:
        log.write(item + "\n")
    if item.startswith("bad"):
        raise WflwvError(item, "cannot be processed")
    value = int(item.removeprefix("v"))
    io.save_npy(out / f"{item}.npy", np.arange(value) ** 2)
    return {"length": value}


def make_stage(tmp_path) -> Stage:
    return Stage("square", tmp_path / "stage", functools.partial(square, tmp_path, tmp_path / "calls.txt"))


def calls(tmp_path) -> list[str]:
    return (tmp_path / "calls.txt").read_text().split()


def test_stage_writes_outputs_rows_and_manifest(tmp_path):
    manifest = run_stage(make_stage(tmp_path), ["v3", "v5", "bad1"])
    assert list(manifest["id"]) == ["v3", "v5", "bad1"]
    assert list(manifest["status"]) == ["done", "done", "failed"]
    assert manifest.loc[2, "reason"] == "bad1: cannot be processed"
    assert np.array_equal(np.load(tmp_path / "v5.npy"), [0, 1, 4, 9, 16])
    assert json.loads((tmp_path / "stage" / "rows" / "v3.json").read_text())["length"] == 3


def test_rerun_skips_finished_items_and_retries_failed_ones(tmp_path):
    stage = make_stage(tmp_path)
    run_stage(stage, ["v3", "bad1"])
    run_stage(stage, ["v3", "bad1", "v4"])
    assert calls(tmp_path) == ["v3", "bad1", "bad1", "v4"]
    run_stage(stage, ["v3", "v4"], force=True)
    assert calls(tmp_path)[-2:] == ["v3", "v4"]


def test_an_item_without_a_row_is_redone(tmp_path):
    """A kill after the outputs but before the row leaves the item unfinished, never half-recorded."""
    stage = make_stage(tmp_path)
    run_stage(stage, ["v3", "v4"])
    stage.row_path("v4").unlink()
    manifest = run_stage(stage, ["v3", "v4"])
    assert calls(tmp_path) == ["v3", "v4", "v4"]
    assert list(manifest["status"]) == ["done", "done"]


def test_a_damaged_row_is_a_one_line_error(tmp_path):
    stage = make_stage(tmp_path)
    run_stage(stage, ["v3"])
    stage.row_path("v3").write_text("{not json")
    with pytest.raises(WflwvError, match="v3.json: not a readable stage row"):
        run_stage(stage, ["v3"])


def test_unknown_executor_is_refused():
    with pytest.raises(WflwvError, match="unknown executor 'dask'"):
        Executor("dask")


def test_ray_and_local_executors_give_identical_outputs(tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # Ray's workers import `square` from here
    items = ["v2", "v7", "v11", "bad3"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    local.mkdir(), remote.mkdir()
    local_manifest = run_stage(make_stage(local), items)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_manifest = run_stage(make_stage(remote), items, Executor("ray"))
    finally:
        ray.shutdown()
    columns = ["id", "status", "length", "reason"]
    assert ray_manifest[columns].equals(local_manifest[columns])  # NaN reasons of done items compare equal
    for item in ["v2", "v7", "v11"]:
        assert np.array_equal(np.load(local / f"{item}.npy"), np.load(remote / f"{item}.npy"))
    assert not set(ray_manifest["worker"]) & set(local_manifest["worker"])  # really done by other processes


def test_an_item_whose_inputs_changed_is_redone(tmp_path):
    """A stage keys each item by its inputs (settings, and files by content): exactly the items whose inputs changed are redone."""
    for item in ("v3", "v4"):
        (tmp_path / f"{item}.txt").write_text("same")
    stage = Stage("square", tmp_path / "stage", make_stage(tmp_path).process, inputs=functools.partial(square_inputs, tmp_path, 1))
    run_stage(stage, ["v3", "v4"])
    run_stage(stage, ["v3", "v4"])
    assert calls(tmp_path) == ["v3", "v4"]
    (tmp_path / "v4.txt").write_text("changed")
    manifest = run_stage(stage, ["v3", "v4"])
    assert calls(tmp_path) == ["v3", "v4", "v4"]
    assert manifest["key"].nunique() == 2
    (tmp_path / "v3.txt").unlink()  # a missing input file is an input too
    run_stage(stage, ["v3", "v4"])
    assert calls(tmp_path)[3:] == ["v3"]
    run_stage(dataclasses.replace(stage, inputs=functools.partial(square_inputs, tmp_path, 2)), ["v3", "v4"])
    assert calls(tmp_path)[4:] == ["v3", "v4"]  # a setting reaches every item


def square_inputs(folder, setting: int, item: str) -> dict:
    return {"setting": setting, "source": folder / f"{item}.txt"}


def test_a_run_removes_what_killed_writes_left_in_the_stage_folders(tmp_path):
    stage = dataclasses.replace(make_stage(tmp_path), outputs=(tmp_path / "out",))
    leftovers = [tmp_path / "out" / f"{io.PARTIAL_PREFIX}v3.npy.x1y2.npy", stage.folder / "rows" / f"{io.PARTIAL_PREFIX}v3.json.abc.json"]
    kept = tmp_path / "out" / ".hidden"
    for path in [*leftovers, kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    run_stage(stage, ["v3"])
    assert not any(path.exists() for path in leftovers) and kept.exists()
