"""A soft subtitle track in a streaming package: a WebVTT rendition on the HLS side.

The job's subtitles (already WebVTT, shifted to the output's times: `subtitle_files`)
become `subtitles.vtt` with an `X-TIMESTAMP-MAP` that ties its cue times to the media's
(the package's segments start at presentation time 0), listed by a one-segment media
playlist `subtitles.m3u8`; `master.m3u8` names it in an `EXT-X-MEDIA` group of
`TYPE=SUBTITLES`, which every variant refers to. A DASH manifest alone gets none.
"""

from __future__ import annotations

import math
from pathlib import Path

from vidq.media.package import MANIFEST_HLS, PackageFile, list_files

SUBTITLES_VTT = "subtitles.vtt"
SUBTITLES_PLAYLIST = "subtitles.m3u8"
GROUP_ID = "subs"
# The cue times' zero is the media's presentation time 0 (90 kHz clock).
TIMESTAMP_MAP = "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000"


def with_hls_subtitles(
    out_dir: Path, files: list[PackageFile], vtt: Path | None, span_seconds: float
) -> list[PackageFile]:
    """Add the WebVTT rendition to the package in `out_dir` (when it has an HLS master
    playlist and the job a soft track); the package's files, listed again if it changed."""
    master = out_dir / MANIFEST_HLS
    if vtt is None or not master.is_file():
        return files
    text = vtt.read_text(encoding="utf-8")
    body = text.split("\n", 1)[1] if text.startswith("WEBVTT") else "\n" + text
    (out_dir / SUBTITLES_VTT).write_text(f"WEBVTT\n{TIMESTAMP_MAP}\n{body}", encoding="utf-8")
    seconds = max(span_seconds, 0.001)
    (out_dir / SUBTITLES_PLAYLIST).write_text(
        "\n".join(
            [
                "#EXTM3U",
                "#EXT-X-VERSION:7",
                f"#EXT-X-TARGETDURATION:{math.ceil(seconds)}",
                "#EXT-X-MEDIA-SEQUENCE:0",
                "#EXT-X-PLAYLIST-TYPE:VOD",
                f"#EXTINF:{seconds:.3f},",
                SUBTITLES_VTT,
                "#EXT-X-ENDLIST",
            ]
        )
        + "\n"
    )
    master.write_text(_with_group(master.read_text()))
    return list_files(out_dir)


def _with_group(master: str) -> str:
    """The master playlist with the subtitles group declared and every variant using it."""
    media = (
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{GROUP_ID}",NAME="Subtitles",LANGUAGE="und",'
        f'DEFAULT=NO,AUTOSELECT=YES,URI="{SUBTITLES_PLAYLIST}"'
    )
    lines: list[str] = []
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            if media not in lines:
                lines.append(media)
            line += f',SUBTITLES="{GROUP_ID}"'
        lines.append(line)
    return "\n".join(lines) + "\n"
