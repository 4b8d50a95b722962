"""The page at `/`: upload, live progress, cancel, download."""
