"""The one error type users see: a path and what is wrong with it."""

from pathlib import Path


class WflwvError(Exception):
    """Bad input. The CLI prints it as one line, `error: <path>: <problem>`, and exits non-zero."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.problem if self.path is None else f"{self.path}: {self.problem}"
