"""Merging leaderboard entries: the video leaderboard rows of several `wflwv bench` runs as one table.

Each run writes RUN/leaderboard_entries.jsonl, one entry per method: its row with intervals, the
digest of its predictions, the digest of the video set it was scored on, its norm and NMF
definition, and the wflwv version. Entries merge only when they were scored alike on the same
video set; the same method twice is kept once when its predictions are the same, refused otherwise.
"""

import json
from pathlib import Path

import pandas as pd

from wflwv.bench import ENTRIES_FILE
from wflwv.errors import WflwvError
from wflwv.report import Leaderboard, video_leaderboard

# what every merged entry must share with the first one
SHARED = {"video_set": "video set", "norm": "NME normalisation", "nmf_definition": "NMF definition"}
TEXT_COLUMNS = ("model", "method", "curve", "causal", "scheme", "normalisation", "labels")


def read_entries(run: Path) -> list[dict]:
    path = run / ENTRIES_FILE
    if not path.is_file():
        raise WflwvError(path, "no leaderboard entries (run wflwv bench with --videos into this folder)")
    try:
        entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WflwvError(path, f"not a JSON-lines file of entries ({error})") from None
    for number, entry in enumerate(entries, 1):
        missing = [key for key in ("model", "method", "row", "prediction_set", *SHARED) if key not in entry]
        if missing:
            raise WflwvError(path, f"entry {number} lacks {', '.join(missing)}")
    return entries


def merge_entries(runs: list[Path]) -> Leaderboard:
    """The video leaderboard of every entry of `runs`, refusing entries scored on another video set or differently."""
    first, kept = None, {}
    for run in runs:
        for entry in read_entries(run):
            first = first or (entry, run)
            for key, what in SHARED.items():
                if entry[key] != first[0][key]:
                    raise WflwvError(run / ENTRIES_FILE, f"{entry['model']} / {entry['method']} was computed on another {what} ({entry[key]}) than the entries of {first[1]} ({first[0][key]})")
            name = (entry["model"], entry["method"])
            if name in kept and kept[name]["prediction_set"] != entry["prediction_set"]:
                raise WflwvError(run / ENTRIES_FILE, f"{name[0]} / {name[1]} is also in an earlier run with other predictions: rename one of them")
            kept[name] = entry
    table = pd.DataFrame([entry["row"] for entry in kept.values()])
    table = table.apply(lambda column: column if column.name in TEXT_COLUMNS else pd.to_numeric(column))  # JSON null is NaN
    return video_leaderboard(table, first[0]["norm"], first[0]["nmf_definition"])
