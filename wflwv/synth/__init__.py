"""The embedded synthetic face world: stills and videos with exact 98-point landmarks."""

from wflwv.synth.world import PRESETS, Preset, generate

__all__ = ["PRESETS", "Preset", "generate"]
