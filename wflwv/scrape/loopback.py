"""A video site on 127.0.0.1 for yt-dlp: a folder of mp4 files, YouTube-style metadata, and chosen failures.

`LoopbackSite(folder)` serves `folder/<name>.mp4` over HTTP on an ephemeral port of 127.0.0.1, in a
thread, while its `with` block runs (and for `lifetime` seconds at most). `site.info_dict(name)` is
the metadata yt-dlp's YouTube extractor would give for that video, with its one format's URL on the
site; `site.write_info_jsons(out)` writes them as `<ID>.info.json` files, what `yt-dlp
--write-info-json` writes and `wflwv scrape --info-json` reads, so that yt-dlp's own download path
runs with no internet. The demo pipeline "scrapes" the synthetic world this way; the tests make the
site fail on purpose, per video (`Failure`).
"""

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from wflwv import io
from wflwv.data.video import probe
from wflwv.errors import WflwvError

CREATIVE_COMMONS = "Creative Commons Attribution license (reuse allowed)"
STANDARD_LICENCE = "Standard YouTube License"
FAILURE_MODES = ("drop", "stall")
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Failure:
    """How the site answers requests for one video's file.

    mode: an HTTP error status (404, 503, ...), "drop" (headers announcing the whole file, half of
    it, then the connection closes) or "stall" (headers, then nothing until the client gives up).
    times: the first `times` requests fail and later ones succeed; None: every request fails.
    """

    mode: int | str
    times: int | None = None

    def __post_init__(self):
        if not (isinstance(self.mode, int) and 400 <= self.mode < 600 or self.mode in FAILURE_MODES):
            raise WflwvError(None, f"unknown failure mode {self.mode!r}: an HTTP error status or one of {', '.join(FAILURE_MODES)}")


class LoopbackSite:
    def __init__(self, folder: str | Path, failures: dict[str, Failure] | None = None, lifetime: float = 600.0):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise WflwvError(self.folder, "no such folder of videos to serve")
        self.failures = dict(failures or {})
        self.lifetime = lifetime
        self.log: list[tuple[str, dict[str, str]]] = []  # (video name, request headers) of every request for a file
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "LoopbackSite":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="loopback-site", daemon=True).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving (idempotent); stalled requests are released and closed."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    @property
    def requests(self) -> Counter[str]:
        """Requests received for each video's file, served or not."""
        with self._lock:
            return Counter(name for name, _ in self.log)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def names(self) -> list[str]:
        return sorted(path.stem for path in self.folder.glob("*.mp4") if not path.name.startswith("."))

    def url(self, name: str) -> str:
        return f"{self.base_url}/videos/{quote(name)}.mp4"

    def info_dict(self, name: str, video_id: str | None = None, licence: str | None = CREATIVE_COMMONS) -> dict:
        """What yt-dlp's YouTube extractor gives for a video, for the file `<name>.mp4` of the folder."""
        video_id = name if video_id is None else video_id
        facts = probe(self.folder / f"{name}.mp4")
        info = {
            "id": video_id,
            "title": f"{name} (loopback)",
            "uploader": "wflwv loopback",
            "uploader_id": "@wflwv-loopback",
            "channel": "wflwv loopback",
            "license": licence,
            "duration": round(facts.n_frames / facts.fps, 3),
            "fps": facts.fps,
            "width": facts.width,
            "height": facts.height,
            "ext": "mp4",
            "webpage_url": f"{self.base_url}/watch?v={quote(video_id)}",
            "extractor": "youtube",
            "extractor_key": "Youtube",
            "formats": [{
                "format_id": f"{facts.height}p",
                "url": self.url(name),
                "ext": "mp4",
                "protocol": "http",
                "vcodec": "avc1.64001f",
                "acodec": "none",
                "width": facts.width,
                "height": facts.height,
                "fps": facts.fps,
                "filesize": (self.folder / f"{name}.mp4").stat().st_size,
            }],
        }
        return {key: value for key, value in info.items() if value is not None}

    def write_info_jsons(self, out: str | Path, licences: dict[str, str | None] | None = None) -> list[Path]:
        """One `<name>.info.json` per video in `out`; `licences` overrides the Creative Commons licence of chosen videos."""
        licences = licences or {}
        paths = []
        for name in self.names():
            path = Path(out) / f"{name}.info.json"
            io.save_text(path, json.dumps(self.info_dict(name, licence=licences.get(name, CREATIVE_COMMONS)), indent=1))
            paths.append(path)
        return paths

    def _failure_for(self, name: str, headers: dict[str, str]) -> Failure | None:
        with self._lock:
            self.log.append((name, headers))
            count = sum(logged == name for logged, _ in self.log)
        failure = self.failures.get(name)
        return failure if failure is not None and (failure.times is None or count <= failure.times) else None


def _handler_for(site: LoopbackSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            match = re.fullmatch(r"/videos/([^/]+)\.mp4", urlsplit(self.path).path)
            name = unquote(match.group(1)) if match else None
            failure = site._failure_for(name, dict(self.headers)) if name else None
            path = site.folder / f"{name}.mp4"
            if name is None or "/" in name or name.startswith(".") or not path.is_file():
                self.send_error(404)
                return
            if failure is not None and isinstance(failure.mode, int):
                self.send_error(failure.mode)
                return
            data = path.read_bytes()
            start, end = _byte_range(self.headers.get("Range"), len(data))
            body = data[start : end + 1]
            self.send_response(206 if len(body) < len(data) else 200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if len(body) < len(data):
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if failure is None:
                self._send(body)
            elif failure.mode == "drop":
                self._send(body[: len(body) // 2])
                self.close_connection = True
            else:  # stall: the client's read timeout must fire
                self.wfile.flush()
                site._stopping.wait(site.lifetime)
                self.close_connection = True

        def _send(self, body: bytes) -> None:
            for offset in range(0, len(body), CHUNK):
                self.wfile.write(body[offset : offset + CHUNK])

    return Handler


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """First and last byte of a single range ("bytes=N-" or "bytes=N-M"); the whole file without one (or a bad one)."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
    if not match or int(match.group(1)) >= size:
        return 0, size - 1
    return int(match.group(1)), min(int(match.group(2) or size - 1), size - 1)
