"""The page at `/`: upload, live progress, cancel, play, download; its players under static/vendor."""
