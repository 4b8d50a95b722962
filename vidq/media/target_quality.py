"""Per-title encoding: the CRF whose output reaches a target VMAF, found on samples.

Method. A few short samples spread over the span (`sample_spans`: three of two seconds
at 1/6, 3/6 and 5/6 of it; a span of six seconds or less is its own single sample) are
encoded exactly as the job would encode them, at a CRF, and scored against their
reference (`vidq.media.quality`); the mean VMAF over all their frames is the score of
that CRF. VMAF falls as the CRF rises, faster and faster (the log of its distance
from 100 is nearly a straight line in the CRF), so:

1. the codec's default CRF is tried first;
2. then one `step` away from it, towards the target (up if the first beat it);
3. then the CRF that the line through those two predicts for the target (at most two
   steps past the last one tried), unless it is one of them.

The CRF chosen is read off the line through the measured points around the target
(extended at most two steps past the end ones when the target is outside them),
rounded, and clamped to the codec's range. The cost: two or three encodes and
scorings of at most six seconds each, whatever the input's length, before the real
encode (bench/README.md).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

SAMPLE_SECONDS = 2.0
SAMPLES = 3
MAX_TRIES = 3


def sample_spans(start: float, span_seconds: float) -> list[tuple[float, float]]:
    """The samples' (start, seconds): the span itself when it is short, else three
    two-second stretches centred at 1/6, 3/6 and 5/6 of it."""
    if span_seconds <= SAMPLES * SAMPLE_SECONDS:
        return [(start, span_seconds)]
    return [
        (start + span_seconds * (2 * n + 1) / (2 * SAMPLES) - SAMPLE_SECONDS / 2, SAMPLE_SECONDS)
        for n in range(SAMPLES)
    ]


@dataclass
class CrfSearch:
    """The tries of one search: which CRF to try next, and the CRF chosen."""

    target: float
    low: int  # the codec's CRF range
    high: int
    first: int  # the codec's default
    scores: dict[int, float] = field(default_factory=dict)  # CRF -> mean VMAF

    @property
    def step(self) -> int:
        return max(2, round((self.high - self.low) / 8))  # 6 for H.264's 0-51, 8 for AV1's

    def next_crf(self) -> int | None:
        """The CRF to try next; None once the tries are done."""
        if not self.scores:
            return self.first
        if len(self.scores) >= MAX_TRIES:
            return None
        if len(self.scores) == 1:
            crf, score = next(iter(self.scores.items()))
            move = self.step if score > self.target else -self.step
            nearby = self._clamp(crf + move)
            return nearby if nearby != crf else None
        guess = self.choice()
        return None if guess in self.scores else guess

    def record(self, crf: int, score: float) -> None:
        self.scores[crf] = score

    def choice(self) -> int:
        """The CRF predicted to reach the target, from the scores measured so far."""
        points = sorted(self.scores.items())
        if len(points) == 1:
            return points[0][0]
        # The neighbouring pair whose scores bracket the target, else the end pair nearest it.
        pair = next(
            (
                (a, b)
                for a, b in itertools.pairwise(points)
                if min(a[1], b[1]) <= self.target <= max(a[1], b[1])
            ),
            None,
        )
        limit = None
        if pair is None:
            above = all(score > self.target for _, score in points)
            pair = (points[-2], points[-1]) if above else (points[0], points[1])
            # Beyond what was measured the line is a guess: go at most two steps past it.
            end = pair[1][0] if above else pair[0][0]
            limit = (end, end + 2 * self.step if above else end - 2 * self.step)
        (crf_a, score_a), (crf_b, score_b) = pair
        gap_a, gap_b, gap = (_gap(score) for score in (score_a, score_b, self.target))
        if gap_a == gap_b:  # flat: the content is as good at either; take the cheaper
            return self._clamp(max(crf_a, crf_b))
        crf = crf_a + (gap - gap_a) * (crf_b - crf_a) / (gap_b - gap_a)
        if limit is not None:
            crf = min(max(crf, min(limit)), max(limit))
        return self._clamp(round(crf))

    def _clamp(self, crf: int) -> int:
        return min(self.high, max(self.low, crf))


def _gap(score: float) -> float:
    """How far a score is from perfect, on the scale where it changes evenly with the CRF:
    the distortion grows about exponentially with it (the quantiser step does), so the
    log of 100 - VMAF is nearly a straight line in the CRF, near 100 as well."""
    return math.log(max(100.0 - score, 0.01))
