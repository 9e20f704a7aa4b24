"""Model options: every family is built from an argparse.Namespace (`model.args`) and checks it the same way."""

import argparse


def require_options(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Raise ValueError naming the options of `names` that args lacks."""
    missing = [name for name in names if not hasattr(args, name)]
    if missing:
        raise ValueError(f"missing options: {', '.join(missing)}")
