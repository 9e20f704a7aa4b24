"""Merging leaderboard entries: the video leaderboard rows of several `wflwv bench` runs as one table.

Each run writes RUN/leaderboard_entries.jsonl, one entry per method: its row with intervals, the
digest of its predictions, the digest of the video set it was scored on, its norm and NMF
definition, the wflwv version, and a digest of the entry itself. Entries merge only when they were
scored alike on the same video set; the same method twice is kept once when its predictions are the
same, refused otherwise. An entry whose row was edited no longer matches its digest and is refused;
the digest is no signature (whoever edits a row can recompute it), so `verify_entries` recomputes
each row from its prediction set and the video set.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from wflwv import io
from wflwv.bench import ENTRIES_FILE, BenchSettings, entry_digest, filter_settings, load_videos, score_method, truth_in, video_set_digest
from wflwv.errors import WflwvError
from wflwv.members import fair_items, load_member_points
from wflwv.predictions import hold_missing, load_prediction_set, prediction_set_scheme, predictions_digest, read_method
from wflwv.schemes import convert
from wflwv.report import Leaderboard, is_entrant, video_leaderboard, video_row_columns, video_splits

# what every merged entry must share with the first one
SHARED = {"video_set": "video set", "norm": "NME normalisation", "nmf_definition": "NMF definition"}
TEXT_COLUMNS = ("model", "method", "curve", "causal", "converged", "scheme", "normalisation", "labels")
MAX_ENTRY_BYTES, MAX_ENTRY_DEPTH, MAX_TEXT = 256 * 1024, 4, 256
MAX_SCORE = 1e6  # no NME, NMF, share or speed comes near; a larger number is an edit or a bug


def read_entries(run: Path) -> list[dict]:
    path = run / ENTRIES_FILE
    if not path.is_file():
        raise WflwvError(path, "no leaderboard entries (run wflwv bench with --videos into this folder)")
    entries = []
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if len(line) > MAX_ENTRY_BYTES:
                raise WflwvError(path, f"entry {number}: longer than {MAX_ENTRY_BYTES} bytes")
            try:
                entry = io.parse_json(line.decode("utf-8"), MAX_ENTRY_DEPTH) if line.strip() else None
            except (UnicodeDecodeError, ValueError) as error:
                raise WflwvError(path, f"entry {number}: not a JSON entry ({error})") from None
            if entry is not None:
                problem = entry_problem(entry)
                if problem:
                    raise WflwvError(path, f"entry {number}: {problem}")
                entries.append(entry)
    if not entries:
        raise WflwvError(path, "holds no entries")
    return entries


def entry_problem(entry) -> str | None:
    """What is wrong with an entry as read from JSON, or None."""
    if not isinstance(entry, dict):
        return f"expected a JSON object, got {type(entry).__name__}"
    missing = [key for key in ("model", "method", "row", "prediction_set", *SHARED, "entry_digest") if key not in entry]
    if missing:
        return f"lacks {', '.join(missing)}" + (" (an older wflwv bench wrote it: rerun the bench, which reuses its cached predictions)" if missing == ["entry_digest"] else "")
    if not all(isinstance(entry[key], str) and len(entry[key]) <= MAX_TEXT for key in ("model", "method", "prediction_set", *SHARED, "entry_digest")):
        return f"model, method, prediction_set, {', '.join(SHARED)} and entry_digest must be text of at most {MAX_TEXT} characters"
    row = entry["row"]
    if not isinstance(row, dict):
        return f"row must be a JSON object, got {type(row).__name__}"
    if (row.get("model"), row.get("method")) != (entry["model"], entry["method"]):
        return f"its row names {row.get('model')!r} / {row.get('method')!r}, the entry {entry['model']!r} / {entry['method']!r}"
    splits = video_splits(pd.DataFrame(columns=list(row)))
    missing = [column for column in video_row_columns(splits) if column not in row]
    if not splits:
        return "row lacks memory_<split>: it scores no split as wflwv bench writes them"
    if missing:
        return f"row lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}, which wflwv bench writes in every row"
    for key, value in row.items():
        if key in TEXT_COLUMNS:
            if not (value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= MAX_TEXT)):
                return f"row {key}: expected text of at most {MAX_TEXT} characters"
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > MAX_SCORE or not math.isfinite(value)):
            return f"row {key}: {str(value)[:40]!r} is not a finite number below {MAX_SCORE:g}"
    if entry_digest(entry) != entry["entry_digest"]:
        return f"{entry['model']} / {entry['method']} does not match its entry_digest: the entry was edited after wflwv bench wrote it"
    return None


def merge_entries(runs: list[Path], videos: Path | None = None) -> Leaderboard:
    """The video leaderboard of every entry of `runs`, refusing entries scored on another video set or differently;
    with `videos`, each entry's row is first recomputed from its prediction set where the run still holds it."""
    first, kept, figures = None, {}, {}
    for run in runs:
        entries = read_entries(run)
        if videos is not None:
            verify_entries(run, entries, videos)
        for entry in entries:
            first = first or (entry, run)
            for key, what in SHARED.items():
                if entry[key] != first[0][key]:
                    raise WflwvError(run / ENTRIES_FILE, f"{entry['model']} / {entry['method']} was computed on another {what} ({entry[key]}) than the entries of {first[1]} ({first[0][key]})")
            name = (entry["model"], entry["method"])
            if name in kept and kept[name]["prediction_set"] != entry["prediction_set"]:
                raise WflwvError(run / ENTRIES_FILE, f"{name[0]} / {name[1]} is also in an earlier run with other predictions: rename one of them")
            same = figures.setdefault(entry["prediction_set"], (name, point_figures(entry["row"])))
            if same[1] != point_figures(entry["row"]):
                raise WflwvError(run / ENTRIES_FILE, f"{name[0]} / {name[1]} has the predictions of {same[0][0]} / {same[0][1]} but other scores")
            kept[name] = entry
    table = pd.DataFrame([entry["row"] for entry in kept.values()])
    table = table.apply(lambda column: column if column.name in TEXT_COLUMNS else pd.to_numeric(column))  # JSON null is NaN
    return video_leaderboard(table, first[0]["norm"], first[0]["nmf_definition"])


def point_figures(row: dict) -> dict:
    """A row's NME and NMF per split, without intervals or differences: what two entries of the same predictions share."""
    return {key: value for key, value in row.items() if key.startswith(("nme_", "nmf_")) and not key.endswith(("_low", "_high", "_p")) and "_vs_" not in key}


def verify_entries(run: Path, entries: list[dict], videos: Path) -> None:
    """Recompute each entry's NME and NMF per split from its prediction set (a run of the run's bench.json, or a filter
    over its raw run) on `videos` as bench scored it (in the row's scheme, a member against the labels without it),
    refusing any that differ; entries whose set the run no longer holds are left as they are."""
    splits, items, inputs, video_scheme = load_videos(videos)
    if video_set_digest(inputs, splits) != entries[0]["video_set"]:
        raise WflwvError(videos, f"is not the video set the entries of {run} were scored on")
    folders, members = run_folders(run), load_member_points(videos, list(items))
    filters = filter_settings(BenchSettings())
    for entry in entries:
        label, method = entry["model"], entry["method"]
        base = label.split(" @")[0]  # an entrant in an extra scheme is labelled "<label> @<scheme>" (bench.in_schemes)
        runs = folders.get(base, {})
        folder = runs.get(method, runs.get("raw") if method in filters else None)
        if folder is None or not folder.is_dir():
            continue
        found = load_prediction_set(folder, {i: item.n_frames for i, item in items.items()}, videos)
        scheme = entry["row"].get("scheme") or video_scheme
        found_scheme = prediction_set_scheme(read_method(folder), found)
        predicted = {i: convert(p, found_scheme, scheme) for i, p in found.items()}
        raw = {i: hold_missing(p) for i, p in predicted.items()}
        landmarks = predicted if method in runs else {i: filters[method].apply_online(p, items[i].fps) for i, p in raw.items()}
        if predictions_digest(landmarks) != entry["prediction_set"]:
            raise WflwvError(folder, f"does not hold the predictions of {label} / {method} that {run / ENTRIES_FILE} scores")
        settings = BenchSettings(norm=entry["norm"], nmf_definition=entry["nmf_definition"])
        truth = truth_in(fair_items(items, members, base), video_scheme, scheme)
        row, _ = score_method({i: hold_missing(p) for i, p in landmarks.items()}, raw, truth, splits, settings)
        claimed = point_figures(entry["row"])
        wrong = [key for key, value in point_figures(row).items() if key in claimed and not np.isclose(value, np.nan if claimed[key] is None else claimed[key], rtol=1e-9, equal_nan=True)]
        if wrong:
            raise WflwvError(run / ENTRIES_FILE, f"{label} / {method}: {wrong[0]} is {entry['row'][wrong[0]]}, its predictions score {row[wrong[0]]}")


def run_folders(run: Path) -> dict[str, dict[str, Path]]:
    """Each entrant's prediction set folder per run name, from a bench's bench.json ({} without one)."""
    path = run / "bench.json"
    if not path.is_file():
        return {}
    manifest = io.read_json(path, 16 << 20, 8)
    parts = [manifest.get(key, []) for key in ("models", "predictions")] if isinstance(manifest, dict) else [None]
    entrants = [entrant for part in parts if isinstance(part, list) for entrant in part]
    if not all(isinstance(part, list) for part in parts) or not all(is_entrant(entrant) for entrant in entrants):
        raise WflwvError(path, "not a bench manifest: expected models and predictions, each a label and its runs' folders")
    return {entrant["label"]: {name: run / folder for name, folder in entrant["runs"].items()} for entrant in entrants}

