"""Dataset construction: per-video stages (scrape, boxes, label, ...) run by one resumable runner."""
