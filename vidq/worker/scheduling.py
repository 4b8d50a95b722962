"""The scheduling policy a worker claims by, from its settings (API.md "Scheduling")."""

from __future__ import annotations

from vidq.config import Settings
from vidq.db.fair_claim import Scheduling


def scheduling_of(settings: Settings) -> Scheduling:
    """VIDQ_FAIR_SHARE and VIDQ_MAX_RUNNING_PER_OWNER as a claim's policy."""
    return Scheduling(
        fair_share=settings.fair_share, max_running_per_owner=settings.max_running_per_owner
    )
