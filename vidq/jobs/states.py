"""Job states and the transitions allowed between them.

Every transition is one conditional UPDATE in `vidq.jobs.queue` (WHERE status = from,
and for a worker's writes also its lease token), so two actors cannot both win:

    queued  -> running     claim_next
    queued  -> cancelled   request_cancel
    running -> completed   complete
    running -> failed      fail; recover_expired_leases once attempts are used up
    running -> cancelled   request_cancel
    running -> queued      release (shutdown); recover_expired_leases (lost worker)

completed, failed and cancelled are final; `remove` deletes a job in any state.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

EVENT_TYPES = {
    JobStatus.COMPLETED: "job.completed",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}
