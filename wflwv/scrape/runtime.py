"""The JavaScript runtime yt-dlp needs to extract YouTube's formats, and its EJS scripts.

Current yt-dlp solves YouTube's player challenges by running the EJS scripts (the `yt-dlp-ejs`
package, which the `yt-dlp[default]` extra pulls in) in a JavaScript runtime. The `reproduce` extra
installs Deno from PyPI (the `deno` package, whose binary lands in the environment's bin/); wflwv
points yt-dlp at that binary, or at a `deno` on PATH when the package is not installed.
"""

import importlib.util

from yt_dlp.globals import supported_js_runtimes

RUNTIME = "deno"


def js_runtimes() -> dict[str, dict]:
    """yt-dlp's `js_runtimes` option: Deno, at the `deno` package's binary when it is installed."""
    try:
        from deno import find_deno_bin
    except ImportError:
        return {RUNTIME: {}}
    return {RUNTIME: {"path": str(find_deno_bin())}}


def js_runtime_info():
    """yt-dlp's own view of that runtime (name, path, version, supported), or None when it finds none."""
    config = js_runtimes()[RUNTIME]
    return supported_js_runtimes.value[RUNTIME](path=config.get("path")).info


def has_ejs_scripts() -> bool:
    return importlib.util.find_spec("yt_dlp_ejs") is not None
