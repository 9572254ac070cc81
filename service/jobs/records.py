"""A job's record and the changes of its state, as pure functions every store applies alike.

A store only keeps records and applies these changes atomically (service/jobs/store.py); what a
change means (who may make it, what it resets, what it frees) is decided here once.

    queued --claim--> running --finish--> done --expire--> (expired: 410)
       ^                 |  \\--fail----> failed
       |                 |   \\-cancel--> cancelled            (any of them: tombstone, then gone)
       +--requeue--------+   (gateway stopped: at once; gateway died: once its lease lapsed)

Times are seconds since the epoch (``time.time()``): they are compared across replicas, whose
clocks NTP keeps within far less than a lease.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from service.schemas import ErrorBody, JobProgress, JobState

# A job interrupted this many times (its gateway died while running it) is failed, not retried:
# a job that kills its gateway (memory) must not kill every replica in turn.
MAX_ATTEMPTS = 2
INTERRUPTED = "interrupted"


class Media(StrEnum):
    """What a job upscales: decided from the upload's bytes at submission, so that a job queued
    again after a restart runs its stored input the same way."""

    IMAGE = "image"
    VIDEO = "video"


def new_id() -> str:
    """128 random bits, URL-safe: the id is the job's only credential beyond the API key."""
    return secrets.token_urlsafe(16)


class JobRecord(BaseModel):
    id: str
    state: JobState
    model: str
    model_reason: str = Field(description="X-Model-Reason of the result")
    options: dict[str, Any] = Field(description="UpscaleOptions, as submitted")
    media: Media = Media.IMAGE
    accept: str | None = None
    created: float
    started: float | None = None
    finished: float | None = None
    expires: float | None = None
    expired: bool = False         # the result is deleted; the record is a tombstone
    attempts: int = 0             # runs started
    owner: str | None = None      # the gateway running it
    lease_until: float | None = None
    progress: JobProgress = Field(default_factory=JobProgress)
    error: ErrorBody | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # the result's, Content-Type included
    input_bytes: int
    reserved_bytes: int           # counted against IMDSR_JOBS_MAX_RESULT_BYTES now
    seconds: float = 0.0          # estimated model seconds (admission's), for Retry-After

    @property
    def result_ready(self) -> bool:
        return self.state is JobState.DONE and not self.expired


def claimed(job: JobRecord, owner: str, now: float, lease_s: float) -> JobRecord:
    return job.model_copy(update={"state": JobState.RUNNING, "owner": owner, "started": now,
                                  "attempts": job.attempts + 1, "lease_until": now + lease_s,
                                  "progress": JobProgress()})


def beaten(job: JobRecord, owner: str, progress: JobProgress, now: float, lease_s: float
           ) -> JobRecord | None:
    """The heartbeat of a running job: its progress and a longer lease; None where it is no
    longer ``owner``'s to run (cancelled, or given to another gateway after a lapse)."""
    if job.state is not JobState.RUNNING or job.owner != owner:
        return None
    return job.model_copy(update={"progress": progress, "lease_until": now + lease_s})


def _ended(job: JobRecord, state: JobState, now: float, ttl_s: float, **changes: object
           ) -> JobRecord:
    return job.model_copy(update={"state": state, "finished": now, "expires": now + ttl_s,
                                  "owner": None, "lease_until": None, "reserved_bytes": 0,
                                  **changes})


def done(job: JobRecord, owner: str, headers: dict[str, str], result_bytes: int,
         progress: JobProgress, now: float, ttl_s: float) -> JobRecord | None:
    """None where the job stopped being ``owner``'s meanwhile (the result is then discarded)."""
    if job.state is not JobState.RUNNING or job.owner != owner:
        return None
    return _ended(job, JobState.DONE, now, ttl_s, headers=headers, reserved_bytes=result_bytes,
                  progress=progress)


def failed(job: JobRecord, owner: str | None, error: ErrorBody, now: float, ttl_s: float
           ) -> JobRecord | None:
    """``owner`` None: whoever runs it (recovery); else only while ``owner`` does."""
    if job.state.final or (owner is not None and job.owner != owner):
        return None
    return _ended(job, JobState.FAILED, now, ttl_s, error=error)


def cancelled(job: JobRecord, now: float, ttl_s: float) -> JobRecord | None:
    """Queued, running or done (its result deleted): cancelled. Failed, cancelled or expired
    jobs stay as they are (None)."""
    if job.state in (JobState.FAILED, JobState.CANCELLED) or job.expired:
        return None
    return _ended(job, JobState.CANCELLED, now, ttl_s, headers={})


def requeued(job: JobRecord, owner: str) -> JobRecord | None:
    """``owner`` stopped (shut down) while running it: queued again, the attempt not counted."""
    if job.state is not JobState.RUNNING or job.owner != owner:
        return None
    return job.model_copy(update={"state": JobState.QUEUED, "owner": None, "started": None,
                                  "lease_until": None, "attempts": max(0, job.attempts - 1),
                                  "progress": JobProgress()})


def recovered(job: JobRecord, now: float, ttl_s: float) -> JobRecord | None:
    """A running job whose gateway's lease lapsed (it died): queued again to run from its stored
    input, or failed with the reason after ``MAX_ATTEMPTS``. None where its lease holds."""
    if job.state is not JobState.RUNNING or (job.lease_until or 0.0) > now:
        return None
    if job.attempts >= MAX_ATTEMPTS:
        return _ended(job, JobState.FAILED, now, ttl_s, error=ErrorBody(
            error=INTERRUPTED, detail=f"the gateway running this job stopped {job.attempts} times "
                                      "while it ran; it is not retried again"))
    return job.model_copy(update={"state": JobState.QUEUED, "owner": None, "started": None,
                                  "lease_until": None, "progress": JobProgress()})


def expired(job: JobRecord, now: float) -> JobRecord | None:
    """A finished job past ``expires``: its result goes, its record stays as a tombstone."""
    if not job.state.final or job.expired or job.expires is None or job.expires > now:
        return None
    return job.model_copy(update={"expired": True, "reserved_bytes": 0})
