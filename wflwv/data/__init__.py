"""Data formats: WFLW stills, the WFLW-V video layout, video files and face crops."""
