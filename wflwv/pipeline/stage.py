"""One runner for every per-video stage: resumable, with a progress bar, in this process or on Ray.

A stage does the same thing to many items (video IDs), each on its own. Doing an item writes its
output files atomically and then its row, `<folder>/rows/<id>.json`: the row is the commit. An item
whose row says it is finished is skipped by the next run; one without a row (killed in flight) or
whose row says "failed" is done again from scratch, and so is one whose row was recorded under
another key. An item's key is the digest of everything that determines its outputs, as the stage's
`inputs` gives it: the settings that change them and the input files, by content (a new video,
calibration or label file, or a new setting, redoes exactly the items it reaches). So a kill at
any moment loses only the items in flight, and no finished item is ever done twice. A run starts
by removing the temporary files that a killed run left in the stage's folders (wflwv.io) and ends
by rewriting the stage's manifest, `<folder>/manifest.parquet`, from the rows.

The executors give identical outputs: an item's work depends on its ID alone, never on which
process or machine does it. On Ray, every worker must see the same file system as the driver
(one machine, or a cluster with a shared mount).
"""

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from wflwv import io
from wflwv.data.videoset import validate_id
from wflwv.errors import WflwvError

EXECUTORS = ("local", "ray")
FAILED = "failed"
MANIFEST_NAME = "manifest.parquet"


@dataclass(frozen=True)
class Stage:
    """A per-item function and where its rows go.

    process(id) does one item, writes its outputs atomically and returns its row: a dict of plain
    values whose "status" says how it ended ("done" unless it says otherwise). A WflwvError it raises
    is recorded as a "failed" row with the error as its reason, and the item is tried again on the
    next run. On Ray, process must be picklable (a module-level function or a functools.partial of one).
    """

    name: str
    folder: Path
    process: Callable[[str], dict]
    resources: dict = field(default_factory=dict)  # Ray's per-item resources, e.g. {"num_gpus": 1}
    inputs: Callable[[str], dict] | None = None  # what determines an item: settings, and input files as Paths (by content)
    outputs: tuple[Path, ...] = ()  # the folders its items write to, cleared of killed writes when a run starts

    def row_path(self, item: str) -> Path:
        return self.folder / "rows" / f"{validate_id(item)}.json"

    def key(self, item: str) -> str | None:
        """The digest of the item's inputs, recorded in its row; None for a stage without inputs."""
        return None if self.inputs is None else io.digest(self.inputs(item))


@dataclass(frozen=True)
class Executor:
    kind: str = "local"
    address: str | None = None  # Ray: an existing cluster's address; None starts a local instance
    max_in_flight: int = 64  # Ray: items submitted ahead of the results

    def __post_init__(self):
        if self.kind not in EXECUTORS:
            raise WflwvError(None, f"unknown executor {self.kind!r}, expected one of {', '.join(EXECUTORS)}")


def run_stage(stage: Stage, items: Sequence[str], executor: Executor = Executor(), force: bool = False) -> pd.DataFrame:
    """Do every item that is not finished (every item with force); returns the stage's manifest."""
    items = list(dict.fromkeys(items))
    for folder in (stage.folder, stage.folder / "rows", *stage.outputs):
        io.remove_partials(folder)
    todo = [item for item in items if force or not _finished(stage, item)]
    if force:
        for item in todo:
            stage.row_path(item).unlink(missing_ok=True)
    with _progress(stage.name) as progress:
        bar = progress.add_task(stage.name, total=len(items), completed=len(items) - len(todo), failed=0)
        failed = 0
        for row in _execute(stage, todo, executor):
            failed += row["status"] == FAILED
            progress.update(bar, advance=1, failed=failed)
    return write_manifest(stage, items)


def do_item(stage: Stage, item: str) -> dict:
    """Process one item and commit its row; what every executor runs."""
    started = time.perf_counter()
    key = {"key": stage.key(item)} if stage.inputs else {}
    try:
        row = {"status": "done", **stage.process(item)}
    except WflwvError as error:
        row = {"status": FAILED, "reason": str(error)}
    row = {"id": item, **key, **row, "seconds": round(time.perf_counter() - started, 3), "worker": f"{os.uname().nodename}:{os.getpid()}"}
    io.save_text(stage.row_path(item), json.dumps(row))
    return row


def read_row(stage: Stage, item: str) -> dict | None:
    path = stage.row_path(item)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise WflwvError(path, "not a readable stage row (JSON); delete it to redo the item") from None


def write_manifest(stage: Stage, items: Sequence[str]) -> pd.DataFrame:
    """The rows of `items` (those that have one) as the stage's parquet manifest."""
    rows = [row for row in (read_row(stage, item) for item in items) if row is not None]
    manifest = pd.DataFrame(rows)
    io.save_parquet(stage.folder / MANIFEST_NAME, manifest)
    return manifest


def _finished(stage: Stage, item: str) -> bool:
    row = read_row(stage, item)
    return row is not None and row["status"] != FAILED and (stage.inputs is None or row.get("key") == stage.key(item))


def _execute(stage: Stage, items: list[str], executor: Executor) -> Iterator[dict]:
    if not items:
        return
    if executor.kind == "local":
        for item in items:
            yield do_item(stage, item)
    else:
        yield from _execute_on_ray(stage, items, executor)


def _execute_on_ray(stage: Stage, items: list[str], executor: Executor) -> Iterator[dict]:
    import ray

    if not ray.is_initialized():
        ray.init(address=executor.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    remote = ray.remote(**stage.resources)(do_item) if stage.resources else ray.remote(do_item)
    stage_ref = ray.put(stage)
    pending, queue = [], iter(items)
    while True:
        while len(pending) < executor.max_in_flight and (item := next(queue, None)) is not None:
            pending.append(remote.remote(stage_ref, item))
        if not pending:
            return
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def _progress(name: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(), TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
