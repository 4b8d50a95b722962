"""Subtitle files: checked and rewritten in Python before ffmpeg or libass sees them.

A client's SRT, WebVTT or ASS file is read as UTF-8 text, parsed by `pysubs2`, and written
anew by vidq as a plain ASS file (`clean_subtitles`): one known font (the one vidq ships,
`FONTS_DIR`), no embedded fonts or pictures (a file that carries them is refused), no font
names in its cues, bounded sizes and counts. Only that rewritten file is stored, and a
job's own copy of it (`job_subtitles`: shifted by the job's `start`, as ASS for libass or
a track, as WebVTT for HLS) is all that ffmpeg ever opens.
"""

from __future__ import annotations

import re
from pathlib import Path

import pysubs2
from pysubs2.formats import autodetect_format

from vidq.errors import UnsupportedMedia

FONTS_DIR = Path(__file__).with_name("fonts") / "ttf"  # only fonts: libass loads every file
FONT_FAMILY = "DejaVu Sans"
SOURCE_FORMATS = ("srt", "vtt", "ass", "ssa")
MAX_CUES = 20_000
MAX_CUE_CHARS = 2_000
MAX_PLAY_RES = 8192
MAX_FONT_SIZE = 400.0
MAX_BORDER = 20.0
# Sections of an ASS file that embed files (fonts, pictures): refused, never rewritten.
_EMBEDDED = re.compile(r"^\s*\[(fonts|graphics)\]\s*$", re.I | re.M)
# Override tags naming a font or a font file: taken out of the cues.
_FONT_TAG = re.compile(r"\\fn[^\\}]*", re.I)
_KEPT_INFO = ("WrapStyle", "ScaledBorderAndShadow", "Collisions", "PlayResX", "PlayResY")


def _refuse(message: str) -> UnsupportedMedia:
    return UnsupportedMedia(
        f"The subtitles {message}.", errors=[{"field": "subtitles", "message": message}]
    )


def clean_subtitles(data: bytes) -> tuple[str, str]:
    """The file rewritten as vidq's own ASS text, and the format it came in (`srt`, `vtt`,
    `ass`, `ssa`); UnsupportedMedia (naming the field `subtitles`) if it is not a
    subtitles file vidq accepts."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("are not UTF-8 text") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if "\x00" in text:
        raise _refuse("are not text (they hold a NUL character)")
    if _EMBEDDED.search(text):
        raise _refuse("embed fonts or pictures, which are not accepted")
    try:
        kind = autodetect_format(text)
    except Exception:  # pysubs2 raises its own errors for what it cannot place
        kind = None
    if kind is None and text.lstrip().lower().startswith("[script info]"):
        kind = "ass"  # an ASS file without styles, which pysubs2 does not recognise alone
    if kind not in SOURCE_FORMATS:
        raise _refuse(f"are not an SRT, WebVTT or ASS file ({kind or 'unknown format'})")
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=kind)
    except Exception as exc:  # a malformed file: pysubs2 raises several kinds
        raise _refuse(f"could not be read as {kind.upper()}: {exc}") from None
    _sanitize(subs)
    return subs.to_string("ass"), kind


def _sanitize(subs: pysubs2.SSAFile) -> None:
    """Bound and neutralize what a hostile file could use against the renderer."""
    cues = [e for e in subs.events if not e.is_comment and e.end > e.start]
    if not cues:
        raise _refuse("hold no cue")
    if len(cues) > MAX_CUES:
        raise _refuse(f"hold {len(cues)} cues; at most {MAX_CUES}")
    for event in cues:
        if len(event.text) > MAX_CUE_CHARS:
            raise _refuse(f"hold a cue longer than {MAX_CUE_CHARS} characters")
        event.text = _FONT_TAG.sub("", event.text)
        event.start, event.end = max(0, event.start), max(0, event.end)
    subs.events = cues
    info = {k: v for k, v in subs.info.items() if k in _KEPT_INFO}
    for key in ("PlayResX", "PlayResY"):
        if key in info:
            value = info[key].strip()
            if not value.isdigit() or not 1 <= int(value) <= MAX_PLAY_RES:
                raise _refuse(f"give {key} {value!r}; it must be 1 to {MAX_PLAY_RES}")
    subs.info = {"ScriptType": "v4.00+", **info}
    subs.fonts_opaque = {}
    subs.graphics_opaque = {}
    subs.aegisub_project = {}
    subs.styles.setdefault("Default", pysubs2.SSAStyle())
    for event in cues:  # a cue of an unknown style would be drawn with libass's own font
        if event.style not in subs.styles:
            event.style = "Default"
    for style in subs.styles.values():
        style.fontname = FONT_FAMILY
        style.fontsize = min(max(style.fontsize, 1.0), MAX_FONT_SIZE)
        style.outline = min(max(style.outline, 0.0), MAX_BORDER)
        style.shadow = min(max(style.shadow, 0.0), MAX_BORDER)


def job_subtitles(stored: Path, out: Path, *, start: float | None, kind: str = "ass") -> Path:
    """Write the stored (already clean) subtitles for one job to `out`: times shifted by the
    job's `start` so that they match its output, cues that end before it dropped; `kind` is
    `ass` or `vtt`."""
    subs = pysubs2.SSAFile.from_string(stored.read_text(encoding="utf-8"), format_="ass")
    if start:
        subs.shift(s=-start)
        subs.events = [e for e in subs.events if e.end > 0]
        for event in subs.events:
            event.start = max(0, event.start)
    out.write_text(subs.to_string(kind), encoding="utf-8")
    return out
