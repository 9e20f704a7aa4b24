"""`wflwv scrape`: every candidate is fetched, licence-gated and cut by the stage runner, one row each.

Layout under BUILD: videos/<name>.mp4 (the cut windows, WFLW-V layout: a candidate scraped again
under other inputs loses its earlier clip first, so that a refused, skipped or failed one has none), stages/scrape/rows/ and
stages/scrape/manifest.parquet (one row per candidate), stages/scrape/downloads/<name>/ (a
download, kept only while it is cut unless keep_downloads), stages/scrape/search/ (each query's
results, so that a rerun scrapes the same candidates).

Concurrency is the stage runner's: the local executor does one candidate after another; the Ray
executor does as many at once as the Ray instance has CPUs, on one machine or a cluster whose
workers share BUILD's file system. `min_interval` spaces the starts of attempts across all of them.
"""

import dataclasses
import functools
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yt_dlp
from yt_dlp.utils import DownloadError

from wflwv import io
from wflwv.data.videoset import is_valid_id
from wflwv.errors import WflwvError
from wflwv.pipeline.stage import Executor, Stage, read_row, run_stage
from wflwv.scrape.cut import cut_window, find_face_window
from wflwv.scrape.fetch import Fetched, FetchSettings, fetch, ytdl_params
from wflwv.scrape.sources import Candidate, search_candidates, search_url

STAGE = "scrape"
STATUSES = ("done", "refused", "skipped", "failed")
METADATA = {"title": str, "uploader": str, "duration": float, "fps": float, "width": int, "height": int}


@dataclass(frozen=True)
class ScrapeSettings:
    fetch: FetchSettings = field(default_factory=FetchSettings)
    window_seconds: float = 5.0  # length of a window chosen automatically (one with a face throughout)
    keep_downloads: bool = False


def stage_folder(out: Path) -> Path:
    return Path(out) / "stages" / STAGE


def scrape(out: Path, candidates: list[Candidate], settings: ScrapeSettings = ScrapeSettings(), executor: Executor = Executor(), force: bool = False) -> pd.DataFrame:
    """Scrape every candidate into `out` (resumable; `force` redoes finished ones); returns the manifest.

    Two candidates with the same name are one: the first is kept.
    """
    by_name = {}
    for candidate in candidates:
        by_name.setdefault(candidate.name, candidate)
    inputs = functools.partial(candidate_inputs, by_name, settings)
    stage = Stage(STAGE, stage_folder(out), functools.partial(scrape_candidate, Path(out), by_name, settings), inputs=inputs, outputs=(Path(out) / "videos",))
    remove_unfinished_downloads(stage, settings)
    return run_stage(stage, list(by_name), executor, force=force)


def candidate_inputs(candidates: dict[str, Candidate], settings: ScrapeSettings, name: str) -> dict:
    """What determines a candidate's cut: where it comes from, its window, licence or skip, and the
    settings that change the file (the info-json itself is not: the loopback site rewrites its URLs every run)."""
    candidate = dataclasses.asdict(candidates[name]) | {"info_json": None}
    return {"candidate": candidate, "max_height": settings.fetch.max_height, "window_seconds": settings.window_seconds}


def remove_unfinished_downloads(stage: Stage, settings: ScrapeSettings) -> None:
    """What a killed run left in stages/scrape/downloads/: every download but the kept ones of finished candidates."""
    for folder in sorted((stage.folder / "downloads").glob("*")):
        row = read_row(stage, folder.name) if is_valid_id(folder.name) else None
        if not (settings.keep_downloads and row is not None and row["status"] == "done"):
            shutil.rmtree(folder, ignore_errors=True)


def scrape_candidate(out: Path, candidates: dict[str, Candidate], settings: ScrapeSettings, name: str) -> dict:
    """Fetch, gate and cut one candidate; its row."""
    candidate = candidates[name]
    row = {"source_id": candidate.source_id, "url": candidate.url, "query": candidate.query, "attempts": 0}
    (Path(out) / "videos" / f"{name}.mp4").unlink(missing_ok=True)  # an earlier window's clip: a candidate not done now has none
    if candidate.skip:
        return {**row, "status": "skipped", "reason": candidate.skip}
    downloads = stage_folder(out) / "downloads" / name
    shutil.rmtree(downloads, ignore_errors=True)  # what a killed run left: this item starts from scratch
    done = False
    try:
        fetched = fetch(candidate, settings.fetch, downloads, stage_folder(out) / "start.lock")
        row |= {"attempts": fetched.attempts, **metadata_columns(fetched.info, candidate), **licence_columns(fetched)}
        if fetched.refusal or fetched.failure:
            return {**row, "status": "refused" if fetched.refusal else "failed", "reason": fetched.refusal or fetched.failure}
        window, chosen = candidate.window, "list"
        if window is None:
            window, chosen = find_face_window(fetched.path, settings.window_seconds), "auto"
        if window is None:
            return {**row, "status": "skipped", "reason": f"no {settings.window_seconds:g} s window with a face throughout"}
        facts = cut_window(fetched.path, window, Path(out) / "videos" / f"{name}.mp4")
        done = True
        return {**row, "fps": facts.fps, "width": facts.width, "height": facts.height, "start": window[0], "end": window[1], "window": chosen, "status": "done"}
    except WflwvError as error:
        return {**row, "status": "failed", "reason": str(error)}
    finally:
        if not (done and settings.keep_downloads):
            shutil.rmtree(downloads, ignore_errors=True)


def metadata_columns(info: dict | None, candidate: Candidate) -> dict:
    info = info or {}
    columns = {key: kind(info[key]) if info.get(key) is not None else None for key, kind in METADATA.items()}
    return {"url": info.get("webpage_url") or candidate.url, **columns}


def licence_columns(fetched: Fetched) -> dict:
    """The licence decided on and its evidence: metadata, list or search (wflwv.scrape.licence)."""
    decision = fetched.licence
    return {"licence": decision.licence, "licence_evidence": decision.evidence} if decision else {}


def search(queries: list[str], per_query: int, out: Path, settings: FetchSettings, force: bool = False) -> list[Candidate]:
    """The first `per_query` Creative Commons videos YouTube finds for each query; each query's
    results are kept in stages/scrape/search/ and reused by later runs (unless `force`)."""
    candidates = []
    for query in queries:
        cache = stage_folder(out) / "search" / f"{hashlib.sha1(f'{per_query} {query}'.encode()).hexdigest()[:16]}.json"
        if force or not cache.is_file():
            params = {**ytdl_params(settings, stage_folder(out)), "extract_flat": "in_playlist", "playlistend": per_query}
            try:
                with yt_dlp.YoutubeDL(params) as ydl:
                    result = ydl.extract_info(search_url(query), download=False)
            except DownloadError as error:
                raise WflwvError(None, f"search {query!r} failed: {error}") from None
            entries = [{"id": entry.get("id"), "url": entry.get("url")} for entry in result.get("entries") or []]
            io.save_text(cache, json.dumps({"query": query, "entries": entries[:per_query]}, ensure_ascii=False))
        candidates += search_candidates(query, json.loads(cache.read_text(encoding="utf-8"))["entries"])
    return candidates


def summary(manifest: pd.DataFrame) -> str:
    """Candidates per status, and how many the Creative Commons search filter decided (no licence row)."""
    counts = manifest["status"].value_counts() if len(manifest) else pd.Series(dtype=int)
    by_search = int((manifest["licence_evidence"] == "search").sum()) if "licence_evidence" in manifest else 0
    return ", ".join(f"{status} {int(counts.get(status, 0))}" for status in STATUSES) + f"; licence from the search filter alone: {by_search}"
