"""Where scrape candidates come from: search queries, official ID lists, URL lists and info-json folders.

Every source gives `Candidate`s, named by a file-safe version of their video ID (`safe_name`): that
name is the stage item, the row's ID and the output's file name.
"""

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

from wflwv.data.videoset import is_valid_id
from wflwv.errors import WflwvError

WATCH_URL = "https://www.youtube.com/watch?v={}"
# `ytsearchN:` always sends YouTube's "videos only" filter and no other; a search URL carries any
# filter in its `sp` parameter, a protobuf in base64: 12 04 (filters, 4 bytes) 10 01 (type: video)
# 30 01 (Creative Commons). yt-dlp's YoutubeSearchURL extractor passes it through.
CREATIVE_COMMONS_SEARCH = "https://www.youtube.com/results?search_query={}&sp=EgQQATAB"
NO_WINDOW = "no usable window in the list (None None)"
# The authors' ID lists are under NVIDIA's non-commercial licence, so wflwv does not ship them: the user
# puts them here (relative to where wflwv runs, as every path of a pipeline file is).
OFFICIAL_LISTS = Path("data/WFLW_V_lists")
OFFICIAL_RANGES = OFFICIAL_LISTS / "download_ranges.txt"
WHERE_TO_GET_LISTS = (
    "no such file: the official lists (download_ranges.txt, frame_windows_all.txt, hard_video_IDs.txt, "
    "easy_video_IDs.txt) are in the authors' GitHub repository, github.com/polo5/LDEQ_RwR, folder datasets/WFLW_V/ "
    f"(NVIDIA's non-commercial licence); copy them to {OFFICIAL_LISTS}/ or give their path"
)


@dataclass(frozen=True)
class Candidate:
    name: str  # the file-safe ID: stage item and output file name
    source_id: str  # the ID as the source gave it
    url: str | None = None  # given to yt-dlp's extract_info
    info_json: Path | None = None  # recorded metadata used instead of extract_info
    window: tuple[int, int] | None = None  # inclusive frame indices; None: find one with a face
    licence: str | None = None  # declared by a URL list, used when the metadata has none
    skip: str | None = None  # why it is recorded without being fetched
    query: str | None = None


def safe_name(video_id: str) -> str:
    """The ID itself when it is a plain file name (letters, digits, '-', '_', '.' not first); otherwise
    its plain characters and a digest of the whole, so different IDs never share a name."""
    if is_valid_id(video_id):
        return video_id
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", video_id).strip("_")[:40] or "id"
    return f"{readable}-{hashlib.sha1(video_id.encode()).hexdigest()[:10]}"


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines of a UTF-8 text file."""
    if not path.is_file():
        raise WflwvError(path, "no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise WflwvError(path, f"not UTF-8 text (byte {error.start})") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_window(path: Path, number: int, start: str, end: str) -> tuple[int, int] | None:
    if start == end == "None":
        return None
    try:
        window = int(start), int(end)
    except ValueError:
        raise WflwvError(path, f"line {number}: frames {start!r} {end!r} are not whole numbers (or None None)") from None
    if not 0 <= window[0] <= window[1]:
        raise WflwvError(path, f"line {number}: window {start}-{end} is not 0 <= start <= end")
    return window


def read_ids(path: Path, info_dir: Path | None = None) -> list[Candidate]:
    """An official list: "ID start end" (inclusive frame indices, download_ranges.txt) or "ID None None"
    (frame_windows_all.txt: no usable window, recorded as skipped). With `info_dir`, each ID's
    metadata is read from `info_dir/<name>.info.json` instead of being extracted from YouTube."""
    if not path.is_file():
        raise WflwvError(path, WHERE_TO_GET_LISTS)
    candidates = []
    for number, line in read_lines(path):
        fields = line.split()
        if len(fields) != 3:
            raise WflwvError(path, f"line {number}: expected 'ID start end', got {line!r}")
        window = read_window(path, number, fields[1], fields[2])
        name = safe_name(fields[0])
        source = {"info_json": info_dir / f"{name}.info.json"} if info_dir else {"url": WATCH_URL.format(quote_plus(fields[0]))}
        candidates.append(Candidate(name, fields[0], window=window, skip=None if window else NO_WINDOW, **source))
    return candidates


def read_queries(path: Path) -> list[str]:
    """Search queries, one a line, in any language."""
    return [line for _, line in read_lines(path)]


def search_url(query: str) -> str:
    return CREATIVE_COMMONS_SEARCH.format(quote_plus(query))


def search_candidates(query: str, entries: list[dict]) -> list[Candidate]:
    """Candidates from a search's flat entries (`_type: url` dicts with an `id`)."""
    return [
        Candidate(safe_name(entry["id"]), entry["id"], url=entry.get("url") or WATCH_URL.format(entry["id"]), query=query)
        for entry in entries
        if entry.get("id")
    ]


def read_urls(path: Path) -> list[Candidate]:
    """A CSV with a header: `url` and `licence` (or `license`) columns, optional `id`, `start`, `end`.

    The licence column is used when the site's metadata has none. Without an `id`, a video is named
    by a digest of its URL.
    """
    if not path.is_file():
        raise WflwvError(path, "no such file")
    try:
        reader = csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline=""))  # a quoted field may hold a newline
        rows = [(reader.line_num, row) for row in reader]  # each row with the line it ends on
    except UnicodeDecodeError as error:
        raise WflwvError(path, f"not UTF-8 text (byte {error.start})") from None
    except csv.Error as error:
        raise WflwvError(path, f"line {reader.reader.line_num}: not CSV ({error})") from None  # DictReader's own line_num lags a row
    columns = set(reader.fieldnames or ())
    licence_column = next((c for c in ("licence", "license") if c in columns), None)
    if "url" not in columns or licence_column is None:
        raise WflwvError(path, "expected a header with 'url' and 'licence' columns")
    candidates = []
    for number, row in rows:
        url = (row["url"] or "").strip()
        if not url:
            raise WflwvError(path, f"line {number}: no url")
        source_id = (row.get("id") or "").strip() or "url-" + hashlib.sha1(url.encode()).hexdigest()[:12]
        start, end = (row.get("start") or "").strip(), (row.get("end") or "").strip()
        window = read_window(path, number, start, end) if start or end else None
        candidates.append(Candidate(safe_name(source_id), source_id, url=url, window=window, licence=(row[licence_column] or "").strip() or None))
    return candidates


def read_info_jsons(folder: Path) -> list[Candidate]:
    """Every `*.info.json` in a folder (as `yt-dlp --write-info-json` writes them), with no window given."""
    if not folder.is_dir():
        raise WflwvError(folder, "no such folder of info-json files")
    candidates = []
    for path in sorted(folder.glob("*.info.json")):
        video_id = load_info_json(path).get("id")
        if not isinstance(video_id, str) or not video_id:
            raise WflwvError(path, "info dict has no 'id'")
        candidates.append(Candidate(safe_name(video_id), video_id, info_json=path))
    return candidates


def load_info_json(path: Path) -> dict:
    if not path.is_file():
        raise WflwvError(path, "no such info-json file")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WflwvError(path, f"not a readable info-json file ({error})") from None
    if not isinstance(info, dict):
        raise WflwvError(path, "not an info dict (a JSON object)")
    return info
