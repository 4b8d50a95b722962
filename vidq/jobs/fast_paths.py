"""The fast-path options, `transcode` and `trim`: their choices and their rules.

`transcode=auto` (the default) lets a job whose input already is what it asks for copy
its streams into the new container instead of re-encoding them (`vidq.jobs.remux`
decides, once the input is probed); `transcode=always` re-encodes whatever the input.
`trim=exact` (the default) keeps a trimmed job frame-exact, which only a re-encode can
do; `trim=fast` lets a remux cut at the key frame at or before `start`.
"""

from __future__ import annotations

from typing import Any

from vidq.jobs.option_values import FieldErrors

TRANSCODE_CHOICES = ("auto", "always")
TRIM_CHOICES = ("exact", "fast")


def resolve_fast_paths(
    given: dict[str, Any], video_codec: str, audio_codec: str, errors: FieldErrors
) -> dict[str, Any]:
    """`transcode` and `trim` with their defaults; transcode=always with a copied stream
    is a contradiction, named as such."""
    transcode: str = given.get("transcode", TRANSCODE_CHOICES[0])
    trim: str = given.get("trim", TRIM_CHOICES[0])
    if transcode == "always":
        for name, codec in (("video_codec", video_codec), ("audio_codec", audio_codec)):
            if codec == "copy":
                errors.add(
                    "transcode",
                    f"transcode=always re-encodes every stream; it cannot be used with {name}=copy",
                )
                break
    return {"transcode": transcode, "trim": trim}
