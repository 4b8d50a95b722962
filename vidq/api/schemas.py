"""Shapes of answers, for the OpenAPI document (`/openapi.json`) and response checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vidq.jobs.fast_paths import TRANSCODE_CHOICES, TRIM_CHOICES
from vidq.jobs.options import AUDIO_CODECS, FORMATS, OPTION_FIELDS, VIDEO_CODECS
from vidq.jobs.output_files import Role
from vidq.jobs.overlays import SUBTITLES_MODES, WATERMARK_POSITIONS
from vidq.jobs.presets import PRESETS


class VideoStream(BaseModel):
    codec: str
    width: int
    height: int
    fps: float | None


class InputVideoStream(VideoStream):
    """The input's video: also its colour, bit depth, HDR and scanning, as probed."""

    bit_depth: int | None = Field(None, description="Bits per sample, e.g. 8 or 10")
    color_primaries: str | None = Field(None, description="e.g. `bt709`, `bt2020`")
    color_transfer: str | None = Field(
        None, description="e.g. `bt709`, `smpte2084` (PQ), `arib-std-b67` (HLG)"
    )
    color_space: str | None = Field(None, description="The matrix, e.g. `bt709`, `bt2020nc`")
    hdr: Literal["pq", "hlg"] | None = Field(None, description="The HDR transfer, if any")
    interlaced: bool = Field(False, description="The stream's field order says interlaced")


class AudioStream(BaseModel):
    codec: str
    channels: int
    sample_rate: int


class InputInfo(BaseModel):
    """The input as stored and probed. For a `source_url`, everything but `filename` and
    `source_url` is null until a worker has fetched and probed it."""

    filename: str
    size_bytes: int | None
    content_type: str | None
    container: str | None
    duration_seconds: float | None
    video: InputVideoStream | None
    audio: AudioStream | None
    source_url: str | None = Field(
        None, description="The URL the input is (or was) fetched from; null for an upload"
    )


class OutputFileModel(BaseModel):
    """One file of a job's output, reachable as `base_url + path`."""

    path: str = Field(description="Relative to the job, e.g. `master.m3u8`, `720p/seg_00001.m4s`")
    role: Role
    size_bytes: int
    content_type: str


class VmafScores(BaseModel):
    mean: float
    min: float
    p5: float = Field(description="The 5th percentile of the frames' scores")


class QualityReport(BaseModel):
    """The output measured against the input as the job shows it (its own transforms
    applied, both at the reference's displayed size, over the job's span); for a
    streaming package, its top rendition."""

    vmaf: VmafScores
    psnr: float = Field(description="PSNR of luma (dB), the mean over the frames")
    ssim: float = Field(description="SSIM of luma, the mean over the frames")
    model: str = Field(description="vmaf_v0.6.1, or vmaf_4k_v0.6.1 above 1080p")


class Loudness(BaseModel):
    integrated_lufs: float
    true_peak_dbtp: float | None = Field(description="null for digital silence")


class LoudnessReport(BaseModel):
    input: Loudness
    output: Loudness
    mode: Literal["linear", "dynamic"] = Field(
        description="linear: one gain for the whole span; dynamic: loudnorm's fallback when"
        " that gain would push the true peak over the target"
    )


class ResultInfo(BaseModel):
    download_url: str = Field(
        description="The output file, or for a streaming package a ZIP of the whole package"
    )
    expires_at: str
    filename: str
    size_bytes: int
    content_type: str
    duration_seconds: float | None
    video: VideoStream | None
    audio: AudioStream | None
    base_url: str = Field(
        description="Signed URL prefix (ends with `/`): each file is at `base_url + path` until `expires_at`"
    )
    files: list[OutputFileModel]
    remuxed: bool = Field(
        False,
        description="True when the streams were copied into the new container, not re-encoded",
    )
    manifests: dict[str, str] | None = Field(
        None,
        description='For a streaming package: `{"hls": url, "dash": url}` (those it has); absent otherwise',
    )
    quality: QualityReport | None = Field(
        None, description="With quality_report or target_vmaf; absent otherwise"
    )
    loudness: LoudnessReport | None = Field(None, description="With loudness; absent otherwise")


class JobError(BaseModel):
    code: str = Field(
        description="transcode_failed, timeout, worker_lost, unsupported_media, storage_full, import_failed, invalid_option, …"
    )
    message: str


class WebhookStatus(BaseModel):
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None


class EmailStatus(BaseModel):
    to: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None


class Notifications(BaseModel):
    webhook: WebhookStatus | None
    email: EmailStatus | None


class JobModel(BaseModel):
    """A conversion job."""

    id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    progress_percent: float | None
    eta_seconds: float | None = Field(
        description="While running: the estimated seconds left, from the progress rate;"
        " null when unknown"
    )
    queue_position: int | None
    priority: int = Field(description="-10…10 as submitted: higher starts first")
    created_at: str
    started_at: str | None
    finished_at: str | None
    processing_seconds: float | None
    input: InputInfo
    options: dict[str, Any]
    result: ResultInfo | None
    error: JobError | None
    notifications: Notifications
    metadata: dict[str, Any]


class JobList(BaseModel):
    jobs: list[JobModel]
    next_cursor: str | None


class PresetModel(BaseModel):
    name: str
    description: str
    options: dict[str, Any]


class PresetList(BaseModel):
    presets: list[PresetModel]


class AccountModel(BaseModel):
    name: str
    webhook_secret: str


class Health(BaseModel):
    status: str
    detail: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, str]] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries saying that these statuses answer with problem+json."""
    return {
        status: {
            "model": Problem,
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
            "description": "Problem details (RFC 9457)",
        }
        for status in statuses
    }


_OVERLAY_UPLOAD_ID: dict[str, Any] = {
    "type": "string",
    "format": "uuid",
    "description": "A finished resumable upload holding the file, instead of the part",
}
# The overlay parts are files (multipart only; in JSON, name an upload instead).
OVERLAY_PARTS = ("watermark", "subtitles")
OVERLAY_SCHEMA: dict[str, Any] = {
    "watermark": {
        "type": "string",
        "format": "binary",
        "description": "A PNG or JPEG image drawn on the picture",
    },
    "watermark_upload_id": _OVERLAY_UPLOAD_ID,
    "watermark_position": {"type": "string", "enum": list(WATERMARK_POSITIONS)},
    "watermark_margin": {"type": "number", "minimum": 0, "maximum": 0.45},
    "watermark_scale": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "watermark_opacity": {"type": "number", "minimum": 0, "maximum": 1},
    "subtitles": {
        "type": "string",
        "format": "binary",
        "description": "An SRT, WebVTT or ASS file, burned in or added as a track",
    },
    "subtitles_upload_id": _OVERLAY_UPLOAD_ID,
    "subtitles_mode": {"type": "string", "enum": list(SUBTITLES_MODES)},
}

_OPTION_SCHEMA: dict[str, Any] = {
    "preset": {"type": "string", "enum": sorted(PRESETS)},
    "format": {"type": "string", "enum": list(FORMATS)},
    "video_codec": {"type": "string", "enum": list(VIDEO_CODECS)},
    "audio_codec": {"type": "string", "enum": list(AUDIO_CODECS)},
    "width": {"type": "integer", "minimum": 16, "maximum": 7680},
    "height": {"type": "integer", "minimum": 16, "maximum": 4320},
    "upscale": {"type": "boolean"},
    "crf": {"type": "integer", "minimum": 0, "maximum": 63},
    "video_bitrate": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[kKmM]?$"},
    "audio_bitrate": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[kKmM]?$"},
    "fps": {"type": "number", "minimum": 1, "maximum": 120},
    "start": {"type": "number", "minimum": 0},
    "end": {"type": "number", "exclusiveMinimum": 0},
    "renditions": {
        "type": "string",
        "pattern": "^[0-9]+(,[0-9]+){0,7}$",
        "description": "hls/dash/cmaf: the ladder as sizes of the short side, e.g. 1080,720,480",
    },
    "segment_seconds": {"type": "number", "minimum": 2, "maximum": 10},
    "poster": {"type": "boolean", "description": "Also make poster.jpg"},
    "poster_at": {"type": "number", "minimum": 0, "description": "When the poster is taken"},
    "storyboard": {"type": "boolean", "description": "Also make storyboard.jpg and .vtt"},
    "storyboard_interval": {"type": "number", "minimum": 0.1, "maximum": 3600},
    "transcode": {
        "type": "string",
        "enum": list(TRANSCODE_CHOICES),
        "description": "auto: copy the input's streams when it already is what is asked",
    },
    "trim": {
        "type": "string",
        "enum": list(TRIM_CHOICES),
        "description": "fast: a remux may cut at key frames (exact: re-encoded)",
    },
    "loudness": {
        "type": "string",
        "enum": ["ebu", "streaming"],
        "description": "Two-pass loudness normalisation: ebu (-23 LUFS), streaming (-14 LUFS)",
    },
    "quality_report": {
        "type": "boolean",
        "description": "Measure VMAF, PSNR and SSIM of the output into result.quality",
    },
    "target_vmaf": {
        "type": "number",
        "minimum": 1,
        "maximum": 100,
        "description": "Instead of crf: the CRF whose output reaches this mean VMAF",
    },
    "hdr": {
        "type": "string",
        "enum": ["tonemap", "keep"],
        "description": "tonemap (default): HDR to SDR BT.709; keep: 10-bit HDR (h265/av1 only)",
    },
    "rotate": {
        "type": "integer",
        "enum": [90, 180, 270],
        "description": "Degrees clockwise, after crop",
    },
    "flip": {"type": "string", "enum": ["h", "v"], "description": "Mirror, after rotate"},
    "crop": {
        "type": "string",
        "pattern": "^(auto|[0-9]+:[0-9]+:[0-9]+:[0-9]+)$",
        "description": "w:h:x:y in displayed pixels, or auto (detect black bars)",
    },
    "deinterlace": {
        "type": "string",
        "enum": ["auto", "off"],
        "description": "auto (default): deinterlace interlaced inputs",
    },
    "priority": {
        "type": "integer",
        "minimum": -10,
        "maximum": 10,
        "description": "Higher starts first; equal priorities oldest first (default 0)",
    },
    "webhook_url": {"type": "string", "format": "uri", "maxLength": 2048},
    "email": {"type": "string", "format": "email"},
    "metadata": {"type": "string", "description": "A JSON object of at most 4 KiB"},
    **OVERLAY_SCHEMA,
}
assert set(OPTION_FIELDS) <= set(_OPTION_SCHEMA), "every option is documented"

_UPLOAD_ID: dict[str, Any] = {
    "type": "string",
    "format": "uuid",
    "description": "A finished resumable upload (the id at the end of its /uploads URL), instead of a file",
}


def _json_option(schema: dict[str, Any]) -> dict[str, Any]:
    """An option as a JSON member: numbers and booleans also as their JSON types."""
    kind = schema.get("type")
    if kind in ("integer", "number", "boolean"):
        return {"oneOf": [schema, {"type": "string"}]}
    return schema


CONVERT_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "upload_id": _UPLOAD_ID,
                    **_OPTION_SCHEMA,
                },
                "additionalProperties": False,
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "source_url": {
                        "type": "string",
                        "format": "uri",
                        "maxLength": 2048,
                        "description": "An http(s) URL the service fetches the input from",
                    },
                    "upload_id": _UPLOAD_ID,
                    **{
                        name: _json_option(s)
                        for name, s in _OPTION_SCHEMA.items()
                        if name not in OVERLAY_PARTS
                    },
                    "metadata": {"type": "object", "description": "At most 4 KiB as JSON"},
                },
                "additionalProperties": False,
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "video/*": {"schema": {"type": "string", "format": "binary"}},
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
    },
}
