"""Atomic writes: a reader never sees a half-written file; a failure removes its temporary file, and a
kill (SIGKILL) leaves only a hidden `.partial.*` file that the next run of its stage removes.
Content digests: what a stage keys its items by."""

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

PARTIAL_PREFIX = ".partial."


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (os.umask can only swap it)."""
    with contextlib.suppress(OSError, StopIteration):
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{PARTIAL_PREFIX}{path.name}.", suffix=path.suffix or ".tmp")
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes it 0600; the file should be as open() would make it
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_writable(folder: str | Path) -> None:
    """Create `folder` if needed and write a file in it: raises OSError unless outputs can go there."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
        pass


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def copy_file(source: str | Path, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def remove_partials(folder: str | Path, recursive: bool = False) -> int:
    """Remove the temporary files that killed writers left in `folder` (and below it, if `recursive`); returns how many."""
    pattern = f"{PARTIAL_PREFIX}*"
    partials = list(Path(folder).rglob(pattern) if recursive else Path(folder).glob(pattern))
    for partial in partials:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return len(partials)


def digest(value) -> str:
    """A short SHA-256 of a JSON-able value in which every Path stands for its file's contents (None when missing)."""
    return hashlib.sha256(json.dumps(_with_file_digests(value), sort_keys=True).encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str | None:
    """The SHA-256 of a file's contents, None when it does not exist; cached while its inode, size and times stay
    (an atomic write makes a new inode)."""
    path = Path(path)
    if not path.is_file():
        return None
    stat = path.stat()
    return _file_digest(str(path.resolve()), (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, version: tuple) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _with_file_digests(value):
    if isinstance(value, Path):
        return file_digest(value)
    if isinstance(value, dict):
        return {str(key): _with_file_digests(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_file_digests(item) for item in value]
    return value
