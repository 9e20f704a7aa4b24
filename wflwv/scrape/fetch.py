"""yt-dlp as a library: metadata, the licence gate, then the download, with retries, backoff and a start-rate limit.

One code path for every source: the metadata comes from `extract_info` (a URL) or from a recorded
info-json file (what `yt-dlp --load-info-json` reads); either way it is sanitised as yt-dlp
sanitises an info-json, the licence is decided from it, and only then does
`YoutubeDL.process_ie_result(info, download=True)` select the format and download the media.

yt-dlp's own retries are off: an attempt is one metadata read and one download, and this module
retries the whole attempt with exponential backoff when its failure is worth retrying (HTTP 5xx or
429, a transfer cut short, a timeout). A permanent failure (another HTTP 4xx, a private or removed
video, no format small enough) is not retried. A retried download resumes its `.part` file.
"""

import contextlib
import fcntl
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import yt_dlp
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DownloadError, ExtractorError, YoutubeDLError

from wflwv.data.video import probe
from wflwv.scrape.licence import LicenceDecision, LicencePolicy, decide
from wflwv.scrape.runtime import js_runtimes
from wflwv.scrape.sources import Candidate, load_info_json

LOG = logging.getLogger("wflwv.scrape.yt_dlp")
LOG.addHandler(logging.NullHandler())  # failures go to the manifest; configure logging to see yt-dlp's messages
LOG.propagate = False


@dataclass(frozen=True)
class FetchSettings:
    max_height: int = 720
    cookies: Path | None = None  # a Netscape cookies file, for YouTube's "confirm you're not a bot"
    timeout: float = 20.0  # seconds without data before a connection is given up
    retries: int = 3  # further attempts after a retryable failure
    backoff: float = 2.0  # seconds before the first retry, doubled before each next one
    rate_limit: float | None = None  # bytes per second of each download (yt-dlp's ratelimit)
    min_interval: float = 0.0  # seconds between the starts of any two attempts, whatever the process
    allow_nc: bool = False  # accept NonCommercial Creative Commons licences
    allow_nd: bool = False  # accept NoDerivatives Creative Commons licences
    trust_cc_search: bool = False  # a search result with no licence anywhere counts as CC BY (the search's filter)
    also_accept: tuple[str, ...] = ()  # licences accepted by exact name besides Creative Commons (LicencePolicy)

    @property
    def licence_policy(self) -> LicencePolicy:
        return LicencePolicy(self.allow_nc, self.allow_nd, self.trust_cc_search, self.also_accept)


@dataclass(frozen=True)
class Fetched:
    info: dict | None  # the metadata, when it could be read
    path: Path | None  # the downloaded media, when it was downloaded
    attempts: int
    licence: LicenceDecision | None = None  # the licence gate's decision, once the metadata was read
    failure: str | None = None  # why it could not be fetched

    @property
    def refusal(self) -> str | None:
        """Why the licence gate refused it."""
        return self.licence.refusal if self.licence else None


def ytdl_params(settings: FetchSettings, folder: Path) -> dict:
    return {
        "format": f"bv*[height<=?{settings.max_height}]/b[height<=?{settings.max_height}]",
        "outtmpl": {"default": str(folder / "video.%(ext)s")},
        "cookiefile": str(settings.cookies) if settings.cookies else None,
        "socket_timeout": settings.timeout,
        "ratelimit": settings.rate_limit,
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "noplaylist": True,
        "js_runtimes": js_runtimes(),  # YouTube's formats need its challenges solved (wflwv.scrape.runtime)
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": LOG,
    }


def fetch(candidate: Candidate, settings: FetchSettings, folder: Path, start_lock: Path) -> Fetched:
    """Metadata, licence gate and download of one candidate into `folder`, retried as the settings say."""
    info, licence, attempts = None, None, 0
    while True:
        attempts += 1
        wait_for_start(start_lock, settings.min_interval)
        try:
            with yt_dlp.YoutubeDL(ytdl_params(settings, folder)) as ydl:
                info = metadata(ydl, candidate)
                licence = decide(info.get("license"), candidate.licence, candidate.query, settings.licence_policy)
                if licence.refusal:
                    return Fetched(info, None, attempts, licence)
                downloaded = ydl.process_ie_result(info, download=True)
            path = Path(downloaded["requested_downloads"][0]["filepath"])
            height = probe(path).height  # a format of unknown height may be chosen: check what came
            if height > settings.max_height:
                return Fetched(info, None, attempts, licence, failure=f"the video is {height} pixels high, more than {settings.max_height}")
            return Fetched(info, path, attempts, licence)
        except YoutubeDLError as error:  # format selection raises ExtractorError itself; a refused URL (file://) RequestError
            if attempts > settings.retries or not is_retryable(error):
                return Fetched(info, None, attempts, licence, failure=describe(error))
        time.sleep(settings.backoff * 2 ** (attempts - 1))


def metadata(ydl: yt_dlp.YoutubeDL, candidate: Candidate) -> dict:
    """The info dict, sanitised as an info-json file is: no format chosen or downloaded yet."""
    if candidate.info_json is not None:
        raw = load_info_json(candidate.info_json)
    else:
        raw = ydl.extract_info(candidate.url, download=False)
    return ydl.sanitize_info(raw, remove_private_keys=True)


def is_retryable(error: YoutubeDLError) -> bool:
    """A server error, a throttle, a cut transfer or a timeout is worth another try; the rest is permanent.

    A download that yt-dlp gives up on after its (zero) retries carries no cause: those failures are
    exactly the retryable ones of its HTTP downloader (5xx, connection lost, too few bytes, timeout).
    """
    cause = (error.exc_info[1] if error.exc_info else None) if isinstance(error, DownloadError) else error
    if isinstance(cause, ExtractorError) and isinstance(cause.cause, HTTPError):
        cause = cause.cause
    if isinstance(cause, HTTPError):
        return cause.status >= 500 or cause.status == 429
    if isinstance(cause, ExtractorError):
        return not cause.expected
    return cause is None


def describe(error: YoutubeDLError) -> str:
    return " ".join(str(error).replace("\r", " ").removeprefix("ERROR:").split())


def wait_for_start(lock: Path, min_interval: float) -> None:
    """Let an attempt start `min_interval` seconds after the previous one started, in any process
    sharing this lock file (Ray workers on one machine or on a shared file system)."""
    if min_interval <= 0:
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            with contextlib.suppress(ValueError):
                time.sleep(max(0.0, float(f.read() or 0) + min_interval - time.time()))
            f.seek(0)
            f.truncate()
            f.write(repr(time.time()))
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
