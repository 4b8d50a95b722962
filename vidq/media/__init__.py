"""Probing inputs, building the ffmpeg command from options, reading ffmpeg's progress."""
