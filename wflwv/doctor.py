"""`wflwv doctor`: is this machine ready for the real reproduction (`make reproduce`)?

Each check reads what the pipeline file names (by default the shipped wflwv.toml) and says what it
found, or what is missing and how to get it. A check that is `required` and fails stops `make
reproduce` before anything runs; the others are advice.
"""

import contextlib
import http.cookiejar
import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WFLW_URL = "https://wywu.github.io/projects/LAB/WFLW.html"
ID_LISTS_URL = "https://github.com/polo5/LDEQ_RwR"  # the authors' release: download_ranges.txt, under NVIDIA's non-commercial licence
WINDOW_MB = 20  # estimate per kept video: the cut window, its boxes, labels and every member's predictions
DOWNLOAD_MB = 500  # estimate per download in flight: a full 720p video before its window is cut
REPRODUCE_EXTRA = "make setup-reproduce (pip install 'wflwv[reproduce]': deno and yt-dlp[default], which brings yt-dlp-ejs)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    found: str  # what was found, or what is missing
    fix: str = ""  # how to get what is missing
    required: bool = True  # a failure stops `make reproduce`

    def line(self) -> str:
        status = "ok" if self.ok else ("MISSING" if self.required else "advice")
        return f"{status:8}{self.name}: {self.found}" + ("" if self.ok else f"\n{'':8}fix: {self.fix}")


def check_js_runtime() -> Check:
    from wflwv.scrape.runtime import js_runtime_info

    info = js_runtime_info()
    name = "JavaScript runtime for yt-dlp"
    if info is None:
        return Check(name, False, "no Deno found (YouTube's formats go missing without one)", REPRODUCE_EXTRA)
    if not info.supported:
        return Check(name, False, f"Deno {info.version} at {info.path} is older than yt-dlp supports", REPRODUCE_EXTRA)
    return Check(name, True, f"Deno {info.version} at {info.path}")


def check_ejs_scripts() -> Check:
    from wflwv.scrape.runtime import has_ejs_scripts

    found = has_ejs_scripts()
    return Check("yt-dlp's EJS scripts", found, "yt-dlp-ejs installed" if found else "yt-dlp-ejs is not installed", REPRODUCE_EXTRA)


def check_cookies(cookies: Path | None) -> Check:
    name = "cookies file"
    if cookies is None:
        return Check(name, False, "none given", "if YouTube asks to confirm you are not a bot: export a logged-in browser's cookies (Netscape format) "
                     "and give them with --cookies, or `cookies = \"FILE\"` in the pipeline's [scrape.fetch]", required=False)
    if not cookies.is_file() or not os.access(cookies, os.R_OK):
        return Check(name, False, f"{cookies} is not a readable file", "export the cookies again, or fix the path and its permissions")
    first = cookies.read_text(errors="replace").lstrip().splitlines()[:1]
    if not first or not (first[0].startswith("# ") or first[0].count("\t") == 6):
        return Check(name, False, f"{cookies} is not a Netscape cookies file", "export the cookies in Netscape format (e.g. a 'cookies.txt' browser extension)")
    loaded = yt_dlp_cookies(cookies)
    if isinstance(loaded, str) or loaded == 0:
        return Check(name, False, f"yt-dlp loads no cookie from {cookies}" + (f" ({loaded})" if isinstance(loaded, str) else ""),
                     "export the cookies again: every line holds 7 tab-separated fields, the expiry a number of seconds")
    return Check(name, True, f"{cookies}, readable, {loaded} cookies as yt-dlp loads them")


def yt_dlp_cookies(cookies: Path) -> int | str:
    """How many cookies yt-dlp loads from a Netscape cookies file (it skips the lines it cannot read), or why it loads none."""
    from yt_dlp.cookies import YoutubeDLCookieJar

    jar, warnings = YoutubeDLCookieJar(str(cookies)), io.StringIO()
    try:
        with contextlib.redirect_stderr(warnings):  # yt-dlp writes a warning per line it skips
            jar.load(ignore_discard=True, ignore_expires=True)
    except (OSError, ValueError, http.cookiejar.LoadError) as error:
        return " ".join(str(error).split())
    skipped = warnings.getvalue().splitlines()
    return len(jar) or (skipped[0].removeprefix("WARNING: ").split(":")[0] if skipped else "no cookie lines")


def check_gpu() -> Check:
    import torch

    if not torch.cuda.is_available():
        return Check("GPU", False, "no CUDA GPU visible to torch", "run on a machine with CUDA GPUs and a CUDA build of torch: the 45 members and LDEQ train for days on one")
    names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return Check("GPU", True, f"{len(names)}: {', '.join(names)}")


def check_wflw(stills: Path) -> Check:
    from wflwv.data.wflw import IMAGES_DIR, WflwStills

    wflw = WflwStills(stills)
    missing = [path for path in (wflw.annotation_path("train"), wflw.annotation_path("test"), stills / IMAGES_DIR) if not path.exists()]
    if missing:
        return Check("WFLW", False, f"{missing[0]} is missing", f"download WFLW_images.tar.gz and WFLW_annotations.tar.gz from {WFLW_URL} and unpack both into {stills}")
    return Check("WFLW", True, f"{stills}")


def check_id_list(path: Path) -> Check:
    if not path.is_file():
        return Check("the authors' ID list", False, f"{path} is missing",
                     f"get download_ranges.txt from the authors' release, {ID_LISTS_URL} (NVIDIA non-commercial licence), and put it at {path}")
    return Check("the authors' ID list", True, f"{path}")


def check_disk(folder: Path, videos: int, workers: int) -> Check:
    existing = next(parent for parent in [folder, *folder.parents] if parent.exists())
    free = shutil.disk_usage(existing).free / 2**20
    needed = videos * WINDOW_MB + workers * DOWNLOAD_MB
    found = f"{free / 1024:.1f} GiB free at {existing}; about {needed / 1024:.1f} GiB planned ({videos} videos x {WINDOW_MB} MB + {workers} downloads x {DOWNLOAD_MB} MB)"
    return Check("disk space", free >= needed, found, f"free {(needed - free) / 1024:.1f} GiB more, or point `build` at a larger disk")


def check_ffmpeg() -> Check:
    import imageio_ffmpeg

    try:
        binary = imageio_ffmpeg.get_ffmpeg_exe()
        version = subprocess.run([binary, "-version"], capture_output=True, text=True, check=True, timeout=30).stdout.split("\n", 1)[0]
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        return Check("ffmpeg binary", False, f"not usable ({error})", "reinstall imageio-ffmpeg (pip install --force-reinstall imageio-ffmpeg), or set IMAGEIO_FFMPEG_EXE to an ffmpeg binary")
    return Check("ffmpeg binary", True, f"{version} ({binary})")


def check_calibration(build: Path, refits: bool) -> Check:
    from wflwv.boxes import Calibration, build_calibration, calibration_for

    path = calibration_for(build)
    fitted_on = Calibration.load(path).fitted_on
    name = "box calibration"
    if refits:
        return Check(name, True, f"{path}, fitted on {fitted_on}; [boxes] fit_calibration refits it on WFLW with the trained members before boxes runs")
    shipped = path != build_calibration(build)
    return Check(name, not shipped, f"{path}, fitted on {fitted_on}",
                 "the shipped calibration was fitted on the synthetic world: set `fit_calibration = true` in [boxes], "
                 f"or run `wflwv boxes --fit-calibration WFLW --build {build} --predictor MEMBER.pth.tar ...`")


def planned_videos(build) -> int:
    """Candidates the pipeline's [scrape] table will fetch: queries x per_query, or the ID or URL list's lines."""
    from wflwv.scrape.sources import read_lines

    source = build.table("scrape").get("source")
    if source not in ("queries", "ids", "urls") or not build.input_path("scrape", source).is_file():
        return 0
    lines = len(read_lines(build.input_path("scrape", source)))
    return lines * build.table("scrape").get("per_query", 10) if source == "queries" else lines


def diagnose(pipeline_name: str = "wflwv", cookies: Path | None = None) -> list[Check]:
    """Every check for the pipeline file (a path, or a shipped pipeline's name)."""
    from wflwv.pipeline.run import Build, pipeline_path, read_pipeline
    from wflwv.pipeline.stage import Executor

    path = pipeline_path(pipeline_name)
    build = Build(path, read_pipeline(path), Executor(), "cpu", False)
    scrape = build.table("scrape")
    cookies = cookies or (Path(scrape["fetch"]["cookies"]) if "cookies" in scrape.get("fetch", {}) else None)
    checks = [check_js_runtime(), check_ejs_scripts(), check_cookies(cookies), check_gpu()]
    if "stills" in build.table("members"):
        checks.append(check_wflw(build.stills))
    if "ids" in scrape:
        checks.append(check_id_list(Path(scrape["ids"])))
    checks += [check_disk(build.root, planned_videos(build), os.cpu_count() or 1), check_ffmpeg()]
    if "boxes" in build.spec:
        checks.append(check_calibration(build.root, bool(build.table("boxes").get("fit_calibration"))))
    return checks


def report(checks: list[Check]) -> str:
    missing = [check.name for check in checks if check.required and not check.ok]
    verdict = f"missing for the reproduction: {', '.join(missing)}" if missing else "ready for the reproduction"
    return "\n".join([check.line() for check in checks] + ["", verdict])

