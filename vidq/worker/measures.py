"""The measuring steps around a job's conversion: loudness, quality, the CRF search.

`add_measure_steps` puts them around the plan's main step (the convert or package run):

- `loudness`: before it, the input's loudness is measured; the main step then applies
  the normalisation (`vidq.media.loudness`); after it, the output's loudness is measured,
  and `result.loudness` says both and which mode loudnorm used.
- `target_vmaf`: before it, samples are encoded at two or three CRFs and scored
  (`vidq.media.target_quality`); the main step then encodes at the CRF chosen.
- `quality_report` (and `target_vmaf`): after it, the output is scored against the
  reference (`vidq.media.quality`) into `result.quality`. A package is scored by its top
  rendition (the largest picture of the ladder).

Each is an ffmpeg run of the plan like any other: progress, cancel, time limits and
niceness are the worker's.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from vidq.config import Settings
from vidq.jobs.options import output_extension
from vidq.media import loudness, quality
from vidq.media.command import build_command
from vidq.media.ffmpeg import FFmpegResult
from vidq.media.formats import CRF_RANGES, DEFAULT_CRF
from vidq.media.target_quality import MAX_TRIES, CrfSearch, sample_spans
from vidq.worker.outputs import OutputPlan, Step

log = logging.getLogger("vidq.worker")

MAIN_STEPS = ("convert", "package")
# Shares of the job's progress, against 1 for the conversion of the whole span.
LOUDNESS_WEIGHT = 0.05
SCORING_WEIGHT = 0.6  # libvmaf takes about as long as a fast encode
QUALITY_LOG = "output" + quality.LOG_SUFFIX


def add_measure_steps(plan: OutputPlan, input_path: Path, settings: Settings) -> None:
    """Put the measuring steps the job's options ask for around its main step."""
    main = next((n for n, step in enumerate(plan.steps) if step.name in MAIN_STEPS), None)
    if main is None:
        return
    options, info = plan.options, plan.info
    ffmpeg = settings.ffmpeg_binary()
    before: list[Step] = []
    after: list[Step] = []
    if options.loudness is not None and info.audio is not None:
        steps = _loudness_steps(plan, ffmpeg, input_path, settings)
        before.append(steps[0])
        after.append(steps[1])
    if options.target_vmaf is not None and info.video is not None:
        before += _CrfSteps(plan, ffmpeg, input_path, settings).steps()
    if (options.quality_report or options.target_vmaf is not None) and info.video is not None:
        after.append(_quality_step(plan, ffmpeg, input_path, settings))
    plan.steps[main : main + 1] = [*before, plan.steps[main], *after]


def _span_arg(plan: OutputPlan) -> float | None:
    """The span's length as the conversion limits it (`-t`), None when it runs to the end."""
    end = plan.options.end
    return None if end is None else end - (plan.options.start or 0.0)


def _loudness_steps(
    plan: OutputPlan, ffmpeg: str, input_path: Path, settings: Settings
) -> tuple[Step, Step]:
    options, info = plan.options, plan.info
    assert options.loudness is not None and info.audio is not None
    target = loudness.TARGETS[options.loudness]
    sample_rate = info.audio.sample_rate
    measured: list[loudness.Loudness] = []

    def read_input(result: FFmpegResult) -> None:
        found = loudness.parse_summary(result.stderr_tail)
        measured.append(found)
        plan.audio_filters[:] = loudness.normalize_filters(target, found, sample_rate)

    def output_command() -> list[str]:
        if plan.is_package:
            index = len(plan.renditions) if info.video is not None else 0
            path, demuxer = _joined_stream(plan, index, "sound.mp4"), "mov"
        else:
            path, demuxer = plan.main_path, quality.OUTPUT_DEMUXERS[options.format]
        return loudness.measure_command(ffmpeg, path, quality.demuxed_as(demuxer), settings)

    def read_output(result: FFmpegResult) -> None:
        plan.reports["loudness"] = {
            "input": measured[-1].to_api(),
            "output": loudness.parse_summary(result.stderr_tail).to_api(),
            "mode": loudness.read_mode(plan.scratch / loudness.STATS_FILE),
        }

    measure_input = loudness.measure_command(
        ffmpeg, input_path, info, settings, start=options.start, span_seconds=_span_arg(plan)
    )
    seconds = plan.span_seconds or None
    return (
        Step("loudness-input", measure_input, seconds, LOUDNESS_WEIGHT, after=read_input),
        Step(
            "loudness-output",
            [],
            seconds,
            LOUDNESS_WEIGHT,
            build=output_command,
            after=read_output,
        ),
    )


def _quality_step(plan: OutputPlan, ffmpeg: str, input_path: Path, settings: Settings) -> Step:
    options, info = plan.options, plan.info
    ref = quality.reference(options, info)

    def command() -> list[str]:
        if plan.is_package:
            path, demuxer = _joined_stream(plan, 0, "top-rendition.mp4"), "mov"
        else:
            path, demuxer = plan.main_path, quality.OUTPUT_DEMUXERS[options.format]
        return quality.measure_command(
            ffmpeg,
            input_path,
            info,
            path,
            demuxer,
            ref,
            settings,
            start=options.start,
            span_seconds=_span_arg(plan),
            log_name=QUALITY_LOG,
        )

    def read(result: FFmpegResult) -> None:
        plan.reports["quality"] = quality.read_report(plan.scratch / QUALITY_LOG, ref.model)

    seconds = plan.span_seconds or None
    return Step("quality", [], seconds, SCORING_WEIGHT, build=command, after=read)


def _joined_stream(plan: OutputPlan, index: int, name: str) -> Path:
    """One stream of a package (its init segment and its media segments, in order) as a
    single fragmented MP4 in the scratch folder, before the package's folders are named."""
    folder = plan.package_dir / f"r{index}"
    target = plan.scratch / name
    with target.open("wb") as joined:
        for part in [folder / "init.mp4", *sorted(folder.glob("seg_*.m4s"))]:
            with part.open("rb") as source:
                shutil.copyfileobj(source, joined)
    return target


@dataclass
class _CrfSteps:
    """The steps of a CRF search: per try, each sample encoded then scored."""

    plan: OutputPlan
    ffmpeg: str
    input_path: Path
    settings: Settings
    search: CrfSearch = field(init=False)
    crf: int | None = None  # the CRF of the try under way; None: the search has ended
    scored: list[tuple[float, int]] = field(default_factory=list)  # (mean, frames) a sample

    def __post_init__(self) -> None:
        options = self.plan.options
        assert options.target_vmaf is not None
        low, high = CRF_RANGES[options.video_codec]
        first = DEFAULT_CRF[options.video_codec]
        self.search = CrfSearch(options.target_vmaf, low, high, first)

    def steps(self) -> list[Step]:
        span = self.plan.span_seconds
        samples = sample_spans(self.plan.options.start or 0.0, span)
        extension = output_extension(self.plan.options)
        steps: list[Step] = []
        for attempt in range(MAX_TRIES):
            for n, (start, seconds) in enumerate(samples):
                share = (seconds / span) if span else 1.0
                output = self.plan.scratch / f"sample-{n}.{extension}"
                log_name = f"sample-{n}{quality.LOG_SUFFIX}"
                length = seconds if seconds > 0 else None
                encode = partial(self._encode, n, start, length, output)
                score = partial(self._score, start, length, output, log_name)
                scored = partial(self._scored, log_name, n == len(samples) - 1)
                steps += [
                    Step(f"sample-{attempt}-{n}", [], length, share, build=encode),
                    Step(
                        f"sample-score-{attempt}-{n}",
                        [],
                        length,
                        share * SCORING_WEIGHT,
                        build=score,
                        after=scored,
                    ),
                ]
        return steps

    def _encode(self, n: int, start: float, length: float | None, output: Path) -> list[str] | None:
        if n == 0:
            self.crf = self.search.next_crf()
        if self.crf is None:
            return None
        end = None if length is None else start + length
        sample = self.plan.options.model_copy(
            update={"start": start or None, "end": end, "crf": self.crf, "audio_codec": "none"}
        )
        return build_command(
            self.ffmpeg, self.input_path, output, sample, self.plan.info, self.settings
        )

    def _score(
        self, start: float, length: float | None, output: Path, log_name: str
    ) -> list[str] | None:
        if self.crf is None:
            return None
        plan = self.plan
        demuxer = quality.OUTPUT_DEMUXERS[plan.options.format]
        ref = quality.reference(plan.options, plan.info)
        return quality.measure_command(
            self.ffmpeg,
            self.input_path,
            plan.info,
            output,
            demuxer,
            ref,
            self.settings,
            start=start or None,
            span_seconds=length,
            log_name=log_name,
        )

    def _scored(self, log_name: str, last: bool, result: FFmpegResult) -> None:
        self.scored.append(quality.mean_vmaf(self.plan.scratch / log_name))
        if not last or self.crf is None:
            return
        frames = sum(count for _, count in self.scored)
        score = sum(mean * count for mean, count in self.scored) / frames
        self.search.record(self.crf, score)
        self.scored.clear()
        chosen = self.search.choice()
        self.plan.options = self.plan.options.model_copy(update={"crf": chosen})
        log.info(
            "target_vmaf %g: CRF %d scored %.2f on the samples; CRF %d chosen so far",
            self.search.target,
            self.crf,
            score,
            chosen,
        )
