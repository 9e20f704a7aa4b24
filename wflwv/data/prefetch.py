"""An iterator advanced by a background thread, so that producing the next items overlaps consuming this one.

Decoding (PyAV, OpenCV), cv2's warps and torch's operators release the GIL, so a reader thread
decoding and cropping the next batch runs on another core while the model solves this one.
"""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of `items`, in order, with up to `depth` of them produced ahead by a background thread.

    An exception raised while producing an item is raised here, at that item. Closing this
    iterator early stops the thread after the item it is producing.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(ready, (item, None), stop):
                    return
            _put(ready, (_END, None), stop)
        except BaseException as error:  # handed to the consumer, raised there
            _put(ready, (_END, error), stop)
        finally:
            if hasattr(items, "close"):  # a generator stopped early runs its own cleanup in this thread
                items.close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _put(ready: queue.Queue, entry: tuple, stop: threading.Event) -> bool:
    """Put an entry unless the consumer has stopped; whether it was put."""
    while not stop.is_set():
        try:
            ready.put(entry, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
