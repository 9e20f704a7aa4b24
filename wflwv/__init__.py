"""wflwv: the WFLW-V benchmark for stable video facial landmarks (LDEQ + RwR)."""

__version__ = "0.1.0"
