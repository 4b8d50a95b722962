"""What this server's limits can convert: a job that cannot fit is refused at submission.

ffmpeg runs under an address-space limit (VIDQ_FFMPEG_MEMORY_BYTES). An encoder's need
grows with the output's pixels (`media.formats.encoder_memory_bytes`), so a job whose
output is too large for the limit would run for a while and then fail inside the encoder;
it is refused with a 422 that names the size and the limit instead.
"""

from __future__ import annotations

from vidq.errors import InvalidOption
from vidq.jobs.options import ResolvedOptions
from vidq.media.command import output_size
from vidq.media.formats import encoder_memory_bytes
from vidq.media.info import MediaInfo

MIB = 1024 * 1024


def check_capacity(options: ResolvedOptions, info: MediaInfo, memory_bytes: int) -> None:
    """Raise InvalidOption if encoding this input with these options needs more memory
    than ffmpeg is allowed."""
    if info.video is None:
        return
    width, height = output_size(info.video, options)
    needed = encoder_memory_bytes(options.video_codec, width, height)
    if needed <= memory_bytes:
        return
    field = "width" if options.width else "height" if options.height else "video_codec"
    raise InvalidOption.field(
        field,
        f"a {width}x{height} {options.video_codec} output needs about {needed // MIB} MiB to"
        f" encode, more than this server's limit of {memory_bytes // MIB} MiB per conversion"
        " (VIDQ_FFMPEG_MEMORY_BYTES); ask for a smaller size",
    )
