"""What a job makes, and the ffmpeg runs that make it: one converted file, a streaming package,
or a still, plus the poster and storyboard a job may ask for besides.

`plan_outputs` turns a job's options and its probed input into `Step`s (one ffmpeg run
each, with its share of the job's progress) inside the job's scratch folder; once every
step has run, `OutputPlan.collect` lists the files made, with their roles and the key each
is stored under, and `describe_result` what the job's `result` says of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vidq.config import Settings
from vidq.jobs.options import ResolvedOptions, output_content_type, output_extension
from vidq.jobs.remux import is_remuxed
from vidq.media import package, stills
from vidq.media.command import (
    build_command,
    expected_output_seconds,
    input_command,
    output_size,
    seconds_arg,
)
from vidq.media.ffmpeg import FFmpegResult
from vidq.media.filters import (
    SDR_COLOUR_ARGS,
    picture_size,
    shown_video,
    still_filters,
    tone_maps,
)
from vidq.media.info import MediaInfo
from vidq.media.overlay_filters import OverlayFiles, overlay_inputs, package_picture
from vidq.media.package_subtitles import with_hls_subtitles
from vidq.media.probe import probe

PACKAGE_DIR = "package"
STILLS_DIR = "stills"


@dataclass(frozen=True)
class Step:
    """One ffmpeg run: its argv, the output seconds it covers (for progress), its weight;
    and a second try if it ends well but leaves no `output` (a poster of a black stretch).

    A step that depends on the ones before it (a measured loudness, a chosen CRF) has a
    `build` that makes its argv when its turn comes (None: nothing to run), and an
    `after` that reads what its run found."""

    name: str
    argv: list[str]
    output_seconds: float | None
    weight: float
    output: Path | None = None
    fallback: list[str] | None = None
    build: Callable[[], list[str] | None] | None = None
    after: Callable[[FFmpegResult], None] | None = None

    def command(self) -> list[str] | None:
        """The argv to run now."""
        return self.build() if self.build is not None else self.argv


@dataclass(frozen=True)
class MadeFile:
    """A file a job made: where it is now, and what it is."""

    path: str  # relative to the job, as clients see it
    role: str
    local: Path
    size_bytes: int
    content_type: str

    def listing(self) -> dict[str, object]:
        """The file as `result.files` lists it (and the package ZIP is built from)."""
        return {
            "path": self.path,
            "role": self.role,
            "size_bytes": self.size_bytes,
            "content_type": self.content_type,
        }


@dataclass
class OutputPlan:
    """The steps of one job and what they leave in its scratch folder."""

    options: ResolvedOptions
    info: MediaInfo
    scratch: Path
    main_name: str
    steps: list[Step] = field(default_factory=list)
    renditions: list[package.Rendition] = field(default_factory=list)
    span_seconds: float = 0.0
    storyboard_interval: float | None = None
    picture: tuple[int, int] | None = None  # the largest picture made (width, height)
    overlays: OverlayFiles | None = None  # the job's watermark and subtitles, if any
    audio_filters: list[str] = field(default_factory=list)  # e.g. a measured loudness's
    reports: dict[str, object] = field(default_factory=dict)  # measured: quality, loudness

    @property
    def is_package(self) -> bool:
        return self.options.format in package.PACKAGE_FORMATS

    @property
    def main_path(self) -> Path:
        """The single converted file (not for packages)."""
        return self.scratch / f"output.{output_extension(self.options)}"

    @property
    def package_dir(self) -> Path:
        return self.scratch / PACKAGE_DIR

    @property
    def stills_dir(self) -> Path:
        return self.scratch / STILLS_DIR

    def package_description(self) -> dict[str, object]:
        """A package's output as the Job shows it: its span, top rendition and audio."""
        video = None
        if self.renditions:
            top = self.renditions[0]
            fps = self.options.fps or (self.info.video.fps if self.info.video else None)
            video = {"codec": "h264", "width": top.width, "height": top.height, "fps": fps}
        audio = None
        if self.info.audio is not None:
            audio = {"codec": "aac", "channels": 2, "sample_rate": self.info.audio.sample_rate}
        return {"duration_seconds": round(self.span_seconds, 3), "video": video, "audio": audio}

    def collect(self) -> list[MadeFile]:
        """Every file made, main file first; call once every step has run."""
        made: list[MadeFile] = []
        if self.is_package:
            has_audio = self.info.audio is not None
            fps = self.options.fps or (self.info.video.fps if self.info.video else None)
            files = package.finish_package(
                self.package_dir,
                self.options.format,
                self.renditions,
                has_audio=has_audio,
                fps=fps,
            )
            vtt = self.overlays.subtitles_vtt if self.overlays else None
            for f in with_hls_subtitles(self.package_dir, files, vtt, self.span_seconds):
                made.append(
                    MadeFile(
                        f.path, f.role, self.package_dir / f.path, f.size_bytes, f.content_type
                    )
                )
        else:
            main = self.main_path
            made.append(
                MadeFile(
                    self.main_name,
                    "main",
                    main,
                    main.stat().st_size,
                    output_content_type(self.options),
                )
            )
        if self.storyboard_interval is not None and self.picture is not None:
            width, height = self.picture
            (self.stills_dir / stills.STORYBOARD_VTT).write_text(
                stills.storyboard_vtt(self.span_seconds, self.storyboard_interval, width, height)
            )
        for name, role in (
            (stills.POSTER, "poster"),
            (stills.STORYBOARD, "storyboard"),
            (stills.STORYBOARD_VTT, "storyboard_vtt"),
        ):
            local = self.stills_dir / name
            if local.is_file():
                made.append(
                    MadeFile(name, role, local, local.stat().st_size, package.content_type_of(name))
                )
        return made


def plan_outputs(
    options: ResolvedOptions,
    info: MediaInfo,
    input_path: Path,
    scratch: Path,
    settings: Settings,
    *,
    main_name: str,
    overlays: OverlayFiles | None = None,
) -> OutputPlan:
    """The ffmpeg runs that make a job's outputs, in order."""
    plan = OutputPlan(options, info, scratch, main_name, overlays=overlays)
    ffmpeg = settings.ffmpeg_binary()
    start = options.start or 0.0
    duration = info.duration_seconds or 0.0
    end = options.end if options.end is not None else duration
    plan.span_seconds = max(0.0, min(end, duration) - start) if duration else 0.0
    expected = expected_output_seconds(options, info)
    video = info.video
    if video is not None:
        if plan.is_package:
            plan.renditions = package.plan_ladder(
                shown_video(options, video), options.renditions, upscale=options.upscale
            )
            plan.picture = (plan.renditions[0].width, plan.renditions[0].height)
        elif options.video_codec not in ("none", "copy"):
            plan.picture = output_size(video, options)
        else:
            plan.picture = (video.width, video.height)

    if options.format == "jpg":
        assert plan.picture is not None
        plan.stills_dir.mkdir(parents=True, exist_ok=True)
        width, height = plan.picture
        at = stills.poster_seconds(start, plan.span_seconds, options.poster_at)
        plan.steps.append(
            _poster_step("still", ffmpeg, input_path, plan.main_path, plan, settings, at, 1.0)
        )
        return plan

    # Built again when its turn comes: steps before it may set its CRF or sound filters.
    def main_command() -> list[str]:
        if plan.is_package:
            return package_command(ffmpeg, input_path, plan, settings)
        return build_command(
            ffmpeg,
            input_path,
            plan.main_path,
            plan.options,
            info,
            settings,
            plan.overlays,
            audio_filters=plan.audio_filters,
        )

    if plan.is_package:
        plan.package_dir.mkdir(parents=True, exist_ok=True)
    name = "package" if plan.is_package else "convert"
    plan.steps.append(Step(name, main_command(), expected, 1.0, build=main_command))

    if video is not None and plan.picture is not None and (options.poster or options.storyboard):
        plan.stills_dir.mkdir(parents=True, exist_ok=True)
        width, height = plan.picture
        if options.poster:
            at = stills.poster_seconds(start, plan.span_seconds, options.poster_at)
            output = plan.stills_dir / stills.POSTER
            plan.steps.append(
                _poster_step("poster", ffmpeg, input_path, output, plan, settings, at, 0.02)
            )
        if options.storyboard and plan.span_seconds > 0:
            interval = stills.storyboard_interval(plan.span_seconds, options.storyboard_interval)
            plan.storyboard_interval = interval
            argv = stills.storyboard_command(
                ffmpeg,
                input_path,
                plan.stills_dir / stills.STORYBOARD,
                info,
                settings,
                start=start,
                span_seconds=plan.span_seconds,
                interval=interval,
                width=width,
                height=height,
                filters=_still_filters(options, info),
            )
            plan.steps.append(Step("storyboard", argv, plan.span_seconds, 0.1))
    return plan


def _poster_step(
    name: str,
    ffmpeg: str,
    input_path: Path,
    output: Path,
    plan: OutputPlan,
    settings: Settings,
    at_seconds: float,
    weight: float,
) -> Step:
    """A poster: a frame that is not black if the window has one, else the plain choice."""
    assert plan.picture is not None
    width, height = plan.picture

    def command(skip_black: bool) -> list[str]:
        return stills.poster_command(
            ffmpeg,
            input_path,
            output,
            plan.info,
            settings,
            at_seconds=at_seconds,
            width=width,
            height=height,
            skip_black=skip_black,
            filters=_still_filters(plan.options, plan.info),
        )

    return Step(name, command(True), None, weight, output=output, fallback=command(False))


def _still_filters(options: ResolvedOptions, info: MediaInfo) -> list[str]:
    """The picture chain up to the scaler, for stills and packages (none without video)."""
    return [] if info.video is None else still_filters(options, info.video)


def package_command(
    ffmpeg: str, input_path: Path, plan: OutputPlan, settings: Settings
) -> list[str]:
    """The one ffmpeg run that encodes the whole ladder into the package folder."""
    options, info = plan.options, plan.info
    picture = _still_filters(options, info)
    argv = input_command(
        ffmpeg, input_path, info, settings, start=options.start, autorotate=not picture
    )
    argv += overlay_inputs(plan.overlays)
    tone_mapped = info.video is not None and tone_maps(options, info.video)
    size = picture_size(options, info.video) if info.video else (0, 0)
    argv += package.package_args(
        info,
        plan.renditions,
        segment_seconds=options.segment_seconds or package.DEFAULT_SEGMENT_SECONDS,
        fps=options.fps,
        out_dir=plan.package_dir,
        span_seconds=plan.span_seconds,
        picture=picture,
        colour=SDR_COLOUR_ARGS if tone_mapped else (),
        drawn=package_picture(options, plan.overlays, size, before=",".join(picture)),
        audio_filters=plan.audio_filters,
    )
    if options.end is not None:
        argv += ["-t", seconds_arg(options.end - (options.start or 0.0))]
    return [*argv, "file:" + str((plan.package_dir / package.MANIFEST_DASH).absolute())]


async def describe_result(
    plan: OutputPlan, made: list[MadeFile], settings: Settings
) -> dict[str, object]:
    """The job's `result` (less its links): the download, the files, the output as probed."""
    files = [f.listing() for f in made]
    document: dict[str, object] = {
        "files": files,
        "remuxed": is_remuxed(plan.options, plan.info),
        **plan.reports,
    }
    if plan.is_package:
        stem = plan.main_name.rsplit(".", 1)[0]
        document.update(
            filename=f"{stem}.zip",
            content_type="application/zip",
            manifests={
                kind: name
                for kind, name in (
                    ("hls", package.MANIFEST_HLS),
                    ("dash", package.MANIFEST_DASH),
                )
                if any(f.path == name for f in made)
            },
            **plan.package_description(),
        )
        return document
    main = made[0]
    document.update(filename=main.path, size_bytes=main.size_bytes, content_type=main.content_type)
    if plan.options.format == "jpg":
        width, height = plan.picture or (0, 0)
        document.update(
            duration_seconds=None,
            video={"codec": "mjpeg", "width": width, "height": height, "fps": None},
            audio=None,
        )
        return document
    # The output is probed out of process like any upload (a warm child, ~0.01 s), not
    # in-process in a thread: it is not only our own bytes. `copy` puts the upload's
    # coded stream into it unchanged, the input's metadata is carried over, and an
    # encoder fed a hostile input could misbehave too; decoding a frame of that here
    # could crash the server, and a thread stuck in a decoder cannot be stopped or held
    # to a memory limit. A thread would save only the pipe round trip.
    output_info = await probe(main.local, settings)
    document.update(
        {
            k: v
            for k, v in output_info.to_api().items()
            if k in ("duration_seconds", "video", "audio")
        }
    )
    return document
