"""wflwv scrape through yt-dlp's own download path, against a loopback site on 127.0.0.1 (no internet)."""

import dataclasses
import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from yt_dlp.extractor.youtube import YoutubeSearchURLIE
from conftest import run_cli
from yt_dlp.utils import parse_qs

from conftest import kill_wflwv_when, redone_items, stage_rows
from wflwv.data.video import probe, read_video, write_video
from wflwv.data.videoset import is_valid_id
from wflwv.errors import WflwvError
from wflwv.scrape import FetchSettings, ScrapeSettings, read_ids, read_info_jsons, read_queries, read_urls, safe_name, scrape
from wflwv.scrape.cut import first_window
from wflwv.scrape.fetch import wait_for_start
from wflwv.scrape.loopback import STANDARD_LICENCE, Failure, LoopbackSite
from wflwv.scrape.sources import search_url

SIZE, BITS, FPS = (64, 128), 8, 25.0
FAST = ScrapeSettings(FetchSettings(timeout=0.5, retries=2, backoff=0.01, min_interval=0.0))


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    """Requests go to 127.0.0.1 itself, never through a proxy named by the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def coded_frames(n: int) -> list[np.ndarray]:
    """Frame i shows i in binary as 8 black or white blocks across the top half, and a ramp below."""
    frames = []
    for i in range(n):
        frame = np.zeros((*SIZE, 3), np.uint8)
        for bit in range(BITS):
            frame[: SIZE[0] // 2, bit * 16 : (bit + 1) * 16] = 255 * (i >> bit & 1)
        frame[SIZE[0] // 2 :] = np.linspace(0, 4 * i, SIZE[1], dtype=np.uint8)[None, :, None]
        frames.append(frame)
    return frames


def frame_codes(frames: np.ndarray) -> list[int]:
    top = frames[:, : SIZE[0] // 2, : BITS * 16].reshape(len(frames), SIZE[0] // 2, BITS, 16, 3).mean(axis=(1, 3, 4))
    return [int(sum(1 << bit for bit in range(BITS) if row[bit] > 128)) for row in top]


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    for name in ("coded", "drop_once", "drop_always", "missing", "stall", "closed"):
        write_video(folder / f"{name}.mp4", coded_frames(60), FPS)
    return folder


@pytest.fixture
def site(site_folder):
    failures = {"drop_once": Failure("drop", times=1), "drop_always": Failure("drop"), "missing": Failure(404), "stall": Failure("stall")}
    with LoopbackSite(site_folder, failures, lifetime=60) as site:
        yield site


def test_the_site_serves_ranges_and_stops_by_itself(site_folder):
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    whole = (site_folder / "coded.mp4").read_bytes()
    with LoopbackSite(site_folder, lifetime=0.5) as site:
        assert direct.open(site.url("coded"), timeout=2).read() == whole
        ranged = direct.open(urllib.request.Request(site.url("coded"), headers={"Range": "bytes=100-199"}), timeout=2)
        assert ranged.status == 206 and ranged.read() == whole[100:200]
        time.sleep(1.0)
        with pytest.raises(OSError):
            direct.open(site.url("coded"), timeout=2)


def info_dir(site: LoopbackSite, tmp_path: Path) -> Path:
    folder = tmp_path / "info"
    site.write_info_jsons(folder, licences={"closed": STANDARD_LICENCE})
    return folder


def ids_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def scrape_ids(site, tmp_path, lines, settings=FAST, **options) -> pd.DataFrame:
    candidates = read_ids(ids_file(tmp_path, lines), info_dir(site, tmp_path))
    return scrape(tmp_path / "build", candidates, settings, **options).set_index("id")


def leftovers(build: Path) -> list[str]:
    """Files in videos/ that are not finished videos, and downloads left behind."""
    videos = [p.name for p in (build / "videos").glob("*") if p.name.startswith(".")] if (build / "videos").exists() else []
    downloads = build / "stages" / "scrape" / "downloads"
    return videos + [str(p) for p in downloads.rglob("*")] if downloads.exists() else videos


def test_a_creative_commons_video_is_cut_frame_accurately(site, tmp_path, site_folder):
    manifest = scrape_ids(site, tmp_path, ["coded 7 31"])
    row = manifest.loc["coded"]
    assert (row.status, row.start, row.end, row.window, row.attempts) == ("done", 7, 31, "list", 1)
    assert row.licence == "Creative Commons Attribution license (reuse allowed)" and row.uploader == "wflwv loopback"
    assert (row.fps, row.width, row.height) == (FPS, SIZE[1], SIZE[0])
    assert row.url.startswith("http://127.0.0.1:")
    cut = read_video(tmp_path / "build" / "videos" / "coded.mp4")
    assert frame_codes(cut) == list(range(7, 32))
    source = read_video(site_folder / "coded.mp4")[7:32]
    assert np.abs(cut.astype(int) - source).mean() < 3
    assert leftovers(tmp_path / "build") == []


def test_a_format_above_max_height_is_never_requested(site, tmp_path):
    folder = info_dir(site, tmp_path)
    info = json.loads((folder / "coded.info.json").read_text())
    info["formats"].append({**info["formats"][0], "format_id": "1080p", "height": 1080, "width": 1920, "url": site.url("coded_1080")})
    (folder / "coded.info.json").write_text(json.dumps(info))
    manifest = scrape(tmp_path / "build", read_ids(ids_file(tmp_path, ["coded 0 9"]), folder), FAST)
    assert list(manifest.status) == ["done"]
    assert site.requests["coded_1080"] == 0 and site.requests["coded"] == 1


def test_licences_are_decided_before_the_download(site, tmp_path):
    folder = info_dir(site, tmp_path)
    unlicensed = site.info_dict("coded", video_id="unlicensed", licence=None)
    (folder / "unlicensed.info.json").write_text(json.dumps(unlicensed))
    manifest = scrape(tmp_path / "build", read_ids(ids_file(tmp_path, ["closed 0 9", "unlicensed 0 9"]), folder), FAST).set_index("id")
    assert list(manifest.status) == ["refused", "refused"]
    assert manifest.loc["closed", "reason"] == "licence 'Standard YouTube License' is not an accepted Creative Commons licence"
    assert manifest.loc["unlicensed", "reason"] == "no licence in the metadata"
    assert site.requests["closed"] == 0 and site.requests["coded"] == 0
    assert not (tmp_path / "build" / "videos").exists()


def test_none_none_lines_are_recorded_as_skipped(site, tmp_path):
    manifest = scrape_ids(site, tmp_path, ["coded None None", "coded2 3 5"])
    assert manifest.loc["coded", "status"] == "skipped" and manifest.loc["coded", "attempts"] == 0
    assert manifest.loc["coded", "reason"] == "no usable window in the list (None None)"
    assert site.requests["coded"] == 0
    assert manifest.loc["coded2", "status"] == "failed" and "no such info-json file" in manifest.loc["coded2", "reason"]


def test_a_candidate_scraped_again_and_not_done_keeps_no_clip_of_its_earlier_window(site, tmp_path):
    assert scrape_ids(site, tmp_path, ["coded 0 9"]).loc["coded", "status"] == "done"
    assert (tmp_path / "build" / "videos" / "coded.mp4").is_file()
    assert scrape_ids(site, tmp_path, ["coded None None"]).loc["coded", "status"] == "skipped"
    assert not (tmp_path / "build" / "videos" / "coded.mp4").exists()


def test_a_404_fails_without_retry(site, tmp_path):
    row = scrape_ids(site, tmp_path, ["missing 0 9"]).loc["missing"]
    assert (row.status, row.attempts) == ("failed", 1) and "HTTP Error 404" in row.reason
    assert site.requests["missing"] == 1 and leftovers(tmp_path / "build") == []


def test_a_dropped_transfer_is_retried_and_resumed(site, tmp_path):
    manifest = scrape_ids(site, tmp_path, ["drop_once 10 20", "drop_always 0 9"])
    assert manifest.loc["drop_once", "status"] == "done" and manifest.loc["drop_once", "attempts"] == 2
    assert frame_codes(read_video(tmp_path / "build" / "videos" / "drop_once.mp4")) == list(range(10, 21))
    row = manifest.loc["drop_always"]
    assert (row.status, row.attempts) == ("failed", 3) and "bytes read" in row.reason
    assert site.requests["drop_always"] == 3
    assert not (tmp_path / "build" / "videos" / "drop_always.mp4").exists() and leftovers(tmp_path / "build") == []


def test_a_stalled_transfer_times_out(site, tmp_path):
    started = time.monotonic()
    settings = ScrapeSettings(FetchSettings(timeout=0.3, retries=1, backoff=0.01))
    row = scrape_ids(site, tmp_path, ["stall 0 9"], settings).loc["stall"]
    assert (row.status, row.attempts) == ("failed", 2) and "timed out" in row.reason
    assert site.requests["stall"] == 2 and time.monotonic() - started < 20
    assert leftovers(tmp_path / "build") == []


def test_a_hostile_id_never_escapes_the_folders(site, tmp_path):
    folder = tmp_path / "info"
    for hostile in ("../escape me", "..", "a/b\\c\n"):
        info = site.info_dict("coded", video_id=hostile)
        (folder / f"{safe_name(hostile)}.info.json").parent.mkdir(exist_ok=True)
        (folder / f"{safe_name(hostile)}.info.json").write_text(json.dumps(info))
    candidates = [dataclasses.replace(candidate, window=(0, 4)) for candidate in read_info_jsons(folder)]
    manifest = scrape(tmp_path / "build" / "inner", candidates, FAST)
    assert sorted(manifest.source_id) == sorted(["../escape me", "..", "a/b\\c\n"])
    assert set(manifest.status) == {"done"}
    names = sorted(p.name for p in (tmp_path / "build" / "inner" / "videos").iterdir())
    assert names == sorted(f"{name}.mp4" for name in manifest.id) and len(set(names)) == 3
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["inner"]
    assert sorted(p.name for p in (tmp_path / "build" / "inner").iterdir()) == ["stages", "videos"]


def test_safe_names_keep_youtube_ids_and_separate_the_rest():
    assert safe_name("-abc_DEF123") == "-abc_DEF123"
    hostile = ["../x", "..", ".", "a b", "a/b", "a_b ", ".hidden", "x" * 200]
    names = [safe_name(video_id) for video_id in hostile]
    assert len(set(names)) == len(names)
    assert all("/" not in name and " " not in name and not name.startswith(".") and len(name) <= 100 for name in names)


def test_rerun_skips_finished_items_and_force_redoes_them(site, tmp_path):
    scrape_ids(site, tmp_path, ["coded 0 9", "missing 0 9"])
    video = tmp_path / "build" / "videos" / "coded.mp4"
    first = video.stat()
    manifest = scrape_ids(site, tmp_path, ["coded 0 9", "missing 0 9"])
    assert site.requests["coded"] == 1 and site.requests["missing"] == 2  # failed items are tried again
    assert (video.stat().st_ino, video.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert manifest.loc["coded", "status"] == "done"
    scrape_ids(site, tmp_path, ["coded 0 9"], force=True)
    assert site.requests["coded"] == 2 and video.stat().st_mtime_ns != first.st_mtime_ns  # written anew (its inode may be reused)


def test_a_cookies_file_is_sent_with_the_requests(site, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tnot-a-bot\n")
    settings = ScrapeSettings(dataclasses.replace(FAST.fetch, cookies=cookies))
    assert scrape_ids(site, tmp_path, ["coded 0 4"], settings).loc["coded", "status"] == "done"
    assert [headers.get("Cookie") for name, headers in site.log if name == "coded"] == ["SID=not-a-bot"]


def test_attempts_start_at_least_min_interval_apart(tmp_path):
    started = time.monotonic()
    for _ in range(3):
        wait_for_start(tmp_path / "start.lock", 0.2)
    assert time.monotonic() - started >= 0.4


def test_keep_downloads_keeps_the_full_download(site, tmp_path):
    settings = ScrapeSettings(FAST.fetch, keep_downloads=True)
    scrape_ids(site, tmp_path, ["coded 0 9"], settings)
    kept = tmp_path / "build" / "stages" / "scrape" / "downloads" / "coded" / "video.mp4"
    assert probe(kept).n_frames == 60


def test_a_url_list_goes_through_extract_info(site, tmp_path):
    """yt-dlp's generic extractor reads a direct link's metadata; the list's licence is used as it has none."""
    urls = tmp_path / "urls.csv"
    urls.write_text(f"id,url,licence,start,end\nopen,{site.url('coded')},CC BY 4.0,5,14\nclosed,{site.url('closed')},,,\n")
    manifest = scrape(tmp_path / "build", read_urls(urls), FAST).set_index("id")
    assert manifest.loc["open", "status"] == "done" and manifest.loc["open", "licence"] == "CC BY 4.0"
    assert frame_codes(read_video(tmp_path / "build" / "videos" / "open.mp4")) == list(range(5, 15))
    assert manifest.loc["closed", "status"] == "refused" and manifest.loc["closed", "reason"] == "no licence in the metadata"
    assert site.requests["closed"] == 1  # the generic extractor's look at the link, no download after it


def test_a_url_list_field_may_hold_a_quoted_newline_and_errors_name_the_rows_line(tmp_path):
    urls = tmp_path / "urls.csv"
    urls.write_text('id,url,licence\r\nfirst,http://a/1,"CC BY 4.0\r\n(attribution: A. Author)"\r\nsecond,http://a/2,CC0\r\n')
    first, second = read_urls(urls)
    assert (first.source_id, first.licence, second.source_id, second.licence) == ("first", "CC BY 4.0\r\n(attribution: A. Author)", "second", "CC0")
    urls.write_text('url,licence\nhttp://a/1,"CC BY\n4.0"\n,CC0\n')
    with pytest.raises(WflwvError, match="line 4: no url"):
        read_urls(urls)
    urls.write_text("url,licence\nhttp://a/1," + "x" * 200_000 + "\n")
    with pytest.raises(WflwvError, match="line 2: not CSV .field larger than field limit"):
        read_urls(urls)


def test_an_automatic_window_has_a_face_throughout(tmp_path):
    from wflwv.synth import Preset, generate

    generate(tmp_path / "world", Preset(0, 0, 1, (160, 192), (90, 120), (192, 160), (80, 110), (50, 51)), seed=2, workers=1)
    faces = read_video(tmp_path / "world" / "videos" / "videos" / "easy0000.mp4")
    site_folder = tmp_path / "site"
    blank = [np.full_like(faces[0], 90)] * 20
    write_video(site_folder / "late_face.mp4", [*blank, *faces], 30.0)
    write_video(site_folder / "no_face.mp4", blank * 3, 30.0)
    with LoopbackSite(site_folder) as site:
        site.write_info_jsons(tmp_path / "info")
        settings = ScrapeSettings(FAST.fetch, window_seconds=1.0)
        manifest = scrape(tmp_path / "build", read_info_jsons(tmp_path / "info"), settings).set_index("id")
    row = manifest.loc["late_face"]
    assert (row.status, row.window, row.start, row.end) == ("done", "auto", 30, 59)  # samples every 15 frames
    assert probe(tmp_path / "build" / "videos" / "late_face.mp4").n_frames == 30
    assert manifest.loc["no_face", "status"] == "skipped" and manifest.loc["no_face", "reason"] == "no 1 s window with a face throughout"


def test_first_window_needs_every_sample_inside_to_have_a_face():
    samples = list(enumerate([False, True, True, False, True, True, True, True]))
    assert first_window(samples, 3, 8) == (4, 6)
    assert first_window(samples, 4, 8) == (4, 7)
    assert first_window(samples, 5, 8) is None
    assert first_window([(0, True), (10, True), (20, False)], 15, 30) == (0, 14)
    assert first_window([(0, True), (10, True), (20, False)], 21, 30) is None


def official_like_lists(folder: Path) -> tuple[Path, Path]:
    """Made-up lists with the quirks of the authors' download_ranges.txt and frame_windows_all.txt: YouTube IDs
    of 11 characters from [A-Za-z0-9_-] (some starting with '-'), one shorter ID, inclusive windows of 120-151
    frames; in the candidates' list, 'ID None None' lines and a garbled ID left over from scraped JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    ranges = ["eXaMpLe0001 3329 3454", "-dash_Start 164 283", "-Zz9_-Yy8xW 0 150", "shortID12 539 658", "under_score 818 967"]
    windows = ["abcDEF12345 None None", *ranges[:2], '-noWindow_1 None None', 'qXY3Z..."}] None None', ranges[3]]
    (folder / "download_ranges.txt").write_text("".join(f"{line}\n" for line in ranges))
    (folder / "frame_windows_all.txt").write_text("".join(f"{line}\n" for line in windows))
    return folder / "download_ranges.txt", folder / "frame_windows_all.txt"


def test_official_lists_are_read_with_their_windows(tmp_path):
    ranges_path, windows_path = official_like_lists(tmp_path / "lists")
    ranges = read_ids(ranges_path)
    assert [c.source_id for c in ranges] == ["eXaMpLe0001", "-dash_Start", "-Zz9_-Yy8xW", "shortID12", "under_score"]
    assert [c.window[1] - c.window[0] + 1 for c in ranges] == [126, 120, 151, 120, 150] and not any(c.skip for c in ranges)
    assert [c.name for c in ranges] == [c.source_id for c in ranges]  # plain IDs, a leading '-' included, name their files
    assert ranges[1].url == "https://www.youtube.com/watch?v=-dash_Start"
    windows = read_ids(windows_path)
    assert [c.skip is not None for c in windows] == [True, False, False, True, True, False]
    assert windows[2].window == (164, 283) and windows[3].source_id == "-noWindow_1" and windows[3].window is None
    odd = windows[4]
    assert odd.source_id == 'qXY3Z..."}]' and odd.skip == "no usable window in the list (None None)"
    assert odd.name != odd.source_id and is_valid_id(odd.name) and odd.name.startswith("qXY3Z")


@pytest.mark.parametrize("line, problem", [
    ("abc 1", "line 2: expected 'ID start end', got 'abc 1'"),
    ("abc 5 2", "line 2: window 5-2 is not 0 <= start <= end"),
    ("abc None 4", "line 2: frames 'None' '4' are not whole numbers (or None None)"),
])
def test_a_malformed_ids_line_names_the_file_and_line(tmp_path, line, problem):
    path = ids_file(tmp_path, ["good 1 2", line])
    with pytest.raises(WflwvError) as error:
        read_ids(path)
    assert str(error.value) == f"{path}: {problem}"


def test_queries_in_any_language_become_creative_commons_searches(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_text("visage en gros plan\n\n顔 クローズアップ\n#cats & dogs\n", encoding="utf-8")
    queries = read_queries(path)
    assert queries == ["visage en gros plan", "顔 クローズアップ", "#cats & dogs"]
    for query in queries:
        url = search_url(query)
        assert YoutubeSearchURLIE.suitable(url)
        assert parse_qs(url)["search_query"] == [query] and parse_qs(url)["sp"] == ["EgQQATAB"]
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(WflwvError, match="queries.txt: not UTF-8 text"):
        read_queries(path)




def test_cli_scrapes_and_prints_a_summary(site, tmp_path):
    folder = info_dir(site, tmp_path)
    ids = ids_file(tmp_path, ["coded 0 4", "closed 0 4", "other None None"])
    result = run_cli("scrape", "--out", tmp_path / "build", "--ids", ids, "--info-json", folder, "--min-interval", 0, "--timeout", 1)
    assert result.returncode == 0, result.stderr
    assert "scrape: done 1, refused 1, skipped 1, failed 0" in result.stdout
    manifest = pd.read_parquet(tmp_path / "build" / "stages" / "scrape" / "manifest.parquet")
    assert list(manifest.status) == ["done", "refused", "skipped"]


@pytest.mark.parametrize("case", ["malformed", "missing"])
def test_cli_bad_input_is_one_line_naming_the_file(tmp_path, case):
    ids = ids_file(tmp_path, ["good 1 2", "bad"]) if case == "malformed" else tmp_path / "absent.txt"
    result = run_cli("scrape", "--out", tmp_path / "build", "--ids", ids)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: {ids}: line 2: expected 'ID start end', got 'bad'" if case == "malformed" else f"error: {ids}: no such file")


def test_ids_without_a_file_read_the_documented_place_and_say_where_the_lists_come_from(tmp_path):
    result = run_cli("scrape", "--ids", "--out", tmp_path / "build", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: data/WFLW_V_lists/download_ranges.txt: no such file")
    assert "github.com/polo5/LDEQ_RwR" in result.stderr and "copy them to data/WFLW_V_lists/" in result.stderr



def test_scrape_killed_then_one_window_changed_cuts_exactly_the_affected_candidate(site, tmp_path):
    """Killed while a transfer stalls; rerun with one candidate's window changed and the stalled one
    dropped from the list: only the changed one is cut again, and the stalled download is removed."""
    folder, stage = info_dir(site, tmp_path), tmp_path / "build" / "stages" / "scrape"
    options = ["--out", tmp_path / "build", "--info-json", folder, "--min-interval", 0, "--backoff", 0.01]
    kill_wflwv_when(lambda: (stage / "downloads" / "stall").exists(), "scrape", *options, "--ids", ids_file(tmp_path, ["coded 0 4", "closed 0 4", "stall 0 4"]), "--timeout", 60)
    finished = stage_rows(stage)
    assert set(finished) == {"coded", "closed"} and leftovers(tmp_path / "build") != []

    result = run_cli("scrape", *options, "--ids", ids_file(tmp_path, ["coded 0 5", "closed 0 4"]), "--timeout", 5)
    assert result.returncode == 0, result.stderr
    assert redone_items(stage, finished) == {"coded"}
    assert probe(tmp_path / "build" / "videos" / "coded.mp4").n_frames == 6
    assert leftovers(tmp_path / "build") == []


def test_a_pipeline_reading_a_missing_list_stops_before_its_first_step(tmp_path, monkeypatch):
    from wflwv.pipeline.run import run_pipeline

    monkeypatch.chdir(tmp_path)
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text('build = "build"\n[members]\nensemble = "ensemble_demo"\nstills = "wflw"\n[scrape]\nsource = "ids"\nids = "data/WFLW_V_lists/download_ranges.txt"\n')
    with pytest.raises(WflwvError, match="no such file: the official lists .* github.com/polo5/LDEQ_RwR"):
        run_pipeline(pipeline)
    assert not (tmp_path / "build").exists()  # the members never started
