"""glibc's malloc, kept from hiding or inflating memory figures."""

import ctypes
import sys

M_MMAP_THRESHOLD, MMAP_THRESHOLD = -3, 128 * 1024  # glibc's mallopt option, and its initial value


def fix_mmap_threshold() -> None:
    """Keep glibc serving large blocks (frames, tensors) from mmap, so that freeing one gives it back.

    By default glibc raises its mmap threshold to the size of each mmapped block freed, after which
    large blocks come from the heap arenas, fragment them, and the process's resident memory creeps
    up with the work done rather than with what it keeps (measured in docs/predict.md). Elsewhere
    than glibc nothing is done.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to fix
            pass
