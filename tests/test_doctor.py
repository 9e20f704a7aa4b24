"""`wflwv doctor`: each check finds what is there, names what is missing and says how to fix it."""

import dataclasses
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from wflwv import doctor
from wflwv.boxes import Calibration
from wflwv.cli import cli
from wflwv.scrape.fetch import FetchSettings, ytdl_params
from wflwv.scrape.runtime import js_runtimes


def fake_deno(tmp_path: Path, version: str) -> Path:
    """An executable that answers `--version` as Deno does, installed as the `deno` package would be found."""
    binary = tmp_path / "bin" / "deno"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text(f"#!/bin/sh\necho 'deno {version} (stable, release, x86_64-unknown-linux-gnu)'\n")
    binary.chmod(0o755)
    return binary


@pytest.fixture
def deno_package(monkeypatch, tmp_path):
    """Install a fake `deno` module whose find_deno_bin() gives the binary chosen by the test."""

    def install(binary: Path | None):
        module = types.ModuleType("deno")
        module.find_deno_bin = lambda: str(binary)
        monkeypatch.setitem(sys.modules, "deno", module if binary else None)

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no other deno to find
    return install


def test_yt_dlp_is_pointed_at_the_deno_package_binary_and_finds_it(deno_package, tmp_path):
    binary = fake_deno(tmp_path, "2.9.8")
    deno_package(binary)
    assert js_runtimes() == {"deno": {"path": str(binary)}}
    assert ytdl_params(FetchSettings(), tmp_path)["js_runtimes"] == {"deno": {"path": str(binary)}}
    check = doctor.check_js_runtime()
    assert check.ok and check.found == f"Deno 2.9.8 at {binary}"


def test_a_missing_or_old_runtime_is_reported_with_its_fix(deno_package, tmp_path):
    deno_package(None)
    assert js_runtimes() == {"deno": {}}
    missing = doctor.check_js_runtime()
    assert not missing.ok and missing.required and "make setup-reproduce" in missing.fix
    deno_package(fake_deno(tmp_path, "1.46.0"))
    old = doctor.check_js_runtime()
    assert not old.ok and "older than yt-dlp supports" in old.found


def test_cookies_must_be_a_readable_netscape_file(tmp_path):
    good = tmp_path / "cookies.txt"
    good.write_text("# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t0\tPREF\tf1=1\n")
    assert doctor.check_cookies(good).ok
    json_cookies = tmp_path / "cookies.json"
    json_cookies.write_text('[{"name": "PREF"}]')
    assert "is not a Netscape cookies file" in doctor.check_cookies(json_cookies).found
    assert not doctor.check_cookies(tmp_path / "absent.txt").ok
    if os.geteuid() != 0:  # root reads any file
        good.chmod(0)
        assert "is not a readable file" in doctor.check_cookies(good).found
    none = doctor.check_cookies(None)
    assert not none.ok and not none.required and "--cookies" in none.fix


def test_the_gpu_is_named_when_there_is_one(monkeypatch):
    if not torch.cuda.is_available():
        check = doctor.check_gpu()
        assert not check.ok and check.found == "no CUDA GPU visible to torch" and "CUDA" in check.fix
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU model {index}")
    assert doctor.check_gpu() == doctor.Check("GPU", True, "2: GPU model 0, GPU model 1")


def test_wflw_and_the_id_list_are_looked_for_where_the_pipeline_says(tmp_path):
    wflw = tmp_path / "WFLW"
    missing = doctor.check_wflw(wflw)
    assert not missing.ok and doctor.WFLW_URL in missing.fix and str(wflw) in missing.fix
    annotations = wflw / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    annotations.mkdir(parents=True)
    for split in ("train", "test"):
        (annotations / f"list_98pt_rect_attr_{split}.txt").write_text("")
    assert "WFLW_images is missing" in doctor.check_wflw(wflw).found
    (wflw / "WFLW_images").mkdir()
    assert doctor.check_wflw(wflw).ok

    ids = tmp_path / "lists" / "download_ranges.txt"
    absent = doctor.check_id_list(ids)
    assert not absent.ok and doctor.ID_LISTS_URL in absent.fix and str(ids) in absent.fix
    ids.parent.mkdir()
    ids.write_text("abc 0 119\n")
    assert doctor.check_id_list(ids).ok


def test_disk_space_is_compared_with_the_planned_videos(tmp_path):
    assert doctor.check_disk(tmp_path / "not" / "yet", 10, 1).ok
    too_many = doctor.check_disk(tmp_path, 10**9, 1)
    assert not too_many.ok and f"{10**9} videos" in too_many.found and too_many.fix.startswith("free ")


def test_the_ffmpeg_binary_runs():
    check = doctor.check_ffmpeg()
    assert check.ok and check.found.startswith("ffmpeg version")


def test_the_calibration_says_where_it_comes_from(tmp_path):
    shipped = doctor.check_calibration(tmp_path, refits=False)
    assert not shipped.ok and "synthetic world" in shipped.found and "fit_calibration = true" in shipped.fix
    assert doctor.check_calibration(tmp_path, refits=True).ok
    dataclasses.replace(Calibration.load(), fitted_on="WFLW (train)", faces=7000).save(tmp_path / "box_calibration.json")
    own = doctor.check_calibration(tmp_path, refits=False)
    assert own.ok and own.found == f"{tmp_path / 'box_calibration.json'}, fitted on WFLW (train)"


def test_doctor_checks_the_pipelines_needs_and_exits_1_on_what_is_missing(tmp_path, monkeypatch, deno_package):
    deno_package(fake_deno(tmp_path, "2.9.8"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "queries.txt").write_text("a face\nanother face\n")
    (tmp_path / "p.toml").write_text('build = "build"\n[members]\nstills = "WFLW"\n[scrape]\nsource = "queries"\nqueries = "queries.txt"\nper_query = 3\n'
                                     'ids = "lists/download_ranges.txt"\n[boxes]\nfit_calibration = true\n')
    checks = {check.name: check for check in doctor.diagnose("p.toml")}
    assert list(checks) == ["JavaScript runtime for yt-dlp", "yt-dlp's EJS scripts", "cookies file", "GPU", "WFLW", "the authors' ID list", "disk space", "ffmpeg binary", "box calibration"]
    assert checks["JavaScript runtime for yt-dlp"].ok and not checks["WFLW"].ok and not checks["the authors' ID list"].ok
    assert "6 videos" in checks["disk space"].found
    result = CliRunner().invoke(cli, ["doctor", "--pipeline", "p.toml"])
    assert result.exit_code == 1
    assert "MISSING WFLW: WFLW/WFLW_annotations" in result.output and "missing for the reproduction: " in result.output
    assert result.output.count("fix: ") == sum(not check.ok for check in checks.values())
