"""Media, whatever the request: formats and codecs, probing, the ffmpeg command and its run.

`formats` (what can be read and written, and the limits), `info` (what a probed file
holds), `probe` (the warm probe children), `command` (the ffmpeg argv), `ffmpeg` (running
it), `child_limits` (how every media child is started). Nothing here imports `vidq.jobs`.
"""
