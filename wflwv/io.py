"""Atomic writes: a reader never sees a half-written file; a failure removes its temporary file, and a
kill (SIGKILL) leaves only a hidden `.partial.*` file that the next run of its stage removes.
Content digests: what a stage keys its items by."""

import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from wflwv.errors import WflwvError

PARTIAL_PREFIX = ".partial."
# a write that fails with one of these (a full disk, a file-size limit, a file system remounted read-only) ends in one
# line naming the file, its temporary file removed; a folder that cannot be written at all fails before, at mkstemp
FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{PARTIAL_PREFIX}{path.name}.", suffix=path.suffix or ".tmp")
    except OSError as error:
        raise WflwvError(path, f"cannot be written ({error.strerror or error})") from None
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes it 0600; the file should be as open() would make it
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and (error.errno in FULL_OR_READ_ONLY or short_write(error)):
            raise WflwvError(path, f"cannot be written ({error.strerror or 'No space left on device: ' + str(error)}); nothing was left half-written") from None
        raise


def short_write(error: OSError) -> bool:
    """numpy's tofile on a full disk: an OSError without errno, "N requested and M written"."""
    return error.errno is None and "requested and" in str(error)


def check_writable(folder: str | Path) -> None:
    """Create `folder` if needed and write a file in it: raises OSError unless outputs can go there."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
        pass


def read_json(path: str | Path, max_bytes: int, max_depth: int):
    """A JSON file no larger than `max_bytes` nor nested deeper than `max_depth`, checked before it is parsed."""
    path = Path(path)
    if path.stat().st_size > max_bytes:
        raise WflwvError(path, f"{path.stat().st_size} bytes, more than the {max_bytes} allowed")
    try:
        return parse_json(path.read_bytes().decode("utf-8"), max_depth)
    except (UnicodeDecodeError, ValueError) as error:
        raise WflwvError(path, f"not valid JSON ({error})") from None


def parse_json(text: str, max_depth: int):
    """json.loads, refusing (ValueError) text nested deeper than `max_depth` before parsing it."""
    depth, deepest, in_string, escaped = 0, 0, False, False
    for char in text:
        if in_string:
            in_string, escaped = (escaped or char != '"'), (not escaped and char == "\\")
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1
    return json.loads(text)


def load_npy(path: str | Path, max_bytes: int, check=lambda shape, dtype: None) -> np.ndarray:
    """An .npy file, or the `landmarks` array of an .npz, whose header (shape, dtype) is read and passed to `check`
    (which raises on a bad one) and whose data must fit in `max_bytes`, all before any of the data is read."""
    path = Path(path)
    if path.suffix != ".npz":
        with open(path, "rb") as f:
            return _read_array(path, f, max_bytes, check)
    with zipfile.ZipFile(path) as archive:
        if "landmarks.npy" not in archive.namelist():
            raise WflwvError(path, f"no 'landmarks' array (keys: {', '.join(n.removesuffix('.npy') for n in archive.namelist()) or 'none'})")
        size = archive.getinfo("landmarks.npy").file_size
        if size > max_bytes + 4096:  # the header's few bytes on top of the data
            raise WflwvError(path, f"'landmarks' decompresses to {size} bytes, more than the {max_bytes} allowed")
        with archive.open("landmarks.npy") as f:  # never yields more than file_size bytes
            return _read_array(path, f, max_bytes, check)


def _read_array(path: Path, f, max_bytes: int, check) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise WflwvError(path, f".npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
    shape, fortran, dtype = read_header(f)
    if dtype.hasobject:
        raise WflwvError(path, f"dtype {dtype} holds Python objects, expected numbers")
    check(shape, dtype)
    size = math.prod(shape) * dtype.itemsize
    if size > max_bytes:
        raise WflwvError(path, f"the array {shape} of {dtype} takes {size} bytes, more than the {max_bytes} allowed")
    array = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
    read = f.readinto(memoryview(array.reshape(-1).view(np.uint8))) if size else 0
    if read != size:
        raise WflwvError(path, f"truncated: {read} of the header's {size} bytes of data")
    return array.T if fortran else array


def require_writable(folder: str | Path) -> None:
    """check_writable, failing with one line naming the folder."""
    try:
        check_writable(folder)
    except OSError as error:
        raise WflwvError(folder, f"cannot be written ({error.strerror or error})") from None


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


def copy_file(source: str | Path, target: str | Path, link: bool = False) -> None:
    """source's content at target, atomically; with link, as a hard link where the file system allows one (the
    files must then never be written in place: wflwv's atomic writes replace a file, which leaves its links as they were)."""
    with atomic_path(target) as tmp:
        if not (link and hard_linked(source, tmp)):
            shutil.copyfile(source, tmp)


def hard_linked(source: str | Path, tmp: Path) -> bool:
    """tmp replaced by a hard link to source; False where the file system makes none (tmp then as it was)."""
    try:
        os.link(source, f"{tmp}.link")  # a partial's name too: remove_partials finds it after a kill
    except OSError:
        return False
    os.replace(f"{tmp}.link", tmp)
    return True


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
