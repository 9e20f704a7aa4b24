"""Scraping candidate videos with yt-dlp: licence gate, frame-accurate windows, a manifest of every candidate."""

from wflwv.scrape.fetch import FetchSettings
from wflwv.scrape.run import ScrapeSettings, scrape, search, summary
from wflwv.scrape.sources import Candidate, read_ids, read_info_jsons, read_queries, read_urls, safe_name

__all__ = [
    "Candidate", "FetchSettings", "ScrapeSettings", "read_ids", "read_info_jsons", "read_queries", "read_urls",
    "safe_name", "scrape", "search", "summary",
]
