"""Checks of values read from config and pipeline files: type and range, each problem one line naming the key."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Number:
    """An int (or, with kind=float, any number) at least `minimum` (above it when `open_minimum`) and at most `maximum`."""

    kind: type = int
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False

    def problem(self, value) -> str | None:
        kinds = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"{value!r} is not {'an integer' if self.kind is int else 'a number'}"
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if self.minimum is not None and (value < self.minimum or (self.open_minimum and value == self.minimum)):
            return f"{value!r} is not {'>' if self.open_minimum else '>='} {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"{value!r} is not <= {self.maximum}"
        return None


POSITIVE = Number(int, 1)
NON_NEGATIVE = Number(int, 0)
POSITIVE_FLOAT = Number(float, 0, open_minimum=True)
NON_NEGATIVE_FLOAT = Number(float, 0)
