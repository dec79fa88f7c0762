"""Jobs: a bounded worker pool, a queue limit, progress, and expiry of finished jobs' files.

Each job runs `render.render` on one of `workers` threads (torch releases the GIL inside its kernels; the
thread count per kernel is set once for the app, serve/app.py). At most `workers + queue` jobs are queued or
running; one more is refused with `QueueFull` (HTTP 429) carrying a Retry-After estimate. A job's files live
in a folder named by its id inside the app's own folder, are reachable only through that id, and are deleted
`expire_s` after the job ends (a sweeper thread; `sweep` is also callable directly). A failed job's folder
is deleted at once; its message stays until it expires like any other.
"""
from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from dataloader.errors import UserError

from .render import Recording, export_file, remove_folder, render

log = logging.getLogger("serve")
STATES = ("queued", "running", "done", "failed")
_FIRST_GUESS_S = 10.0  # a job's duration before any has finished (only for Retry-After)


class QueueFull(Exception):
    """Too many jobs queued; `retry_after` whole seconds is when one is likely to be free."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full, retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    """One request's state. `folder` holds recording.h5, preview.png and the exports made so far."""

    id: str
    rec: Recording
    folder: Path
    created: float
    state: str = "queued"
    progress: float = 0.0
    error: str = ""
    started: Optional[float] = None
    finished: Optional[float] = None
    export_lock: threading.Lock = field(default_factory=threading.Lock)


class JobStore:
    """The jobs of one app: submit, look up, export, expire."""

    def __init__(self, root: Path, workers: int, queue: int, expire_s: float, device: Any) -> None:
        self.root, self.workers, self.queue, self.expire_s = Path(root), int(workers), int(queue), float(expire_s)
        self.device = device
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.durations: list[float] = []  # of the last finished jobs, for Retry-After
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="serve-job")
        self._stop = threading.Event()
        self._sweeper: Optional[threading.Thread] = None

    # -- submitting and running ------------------------------------------------------------------------
    def submit(self, rec: Recording) -> Job:
        """Queue `rec`; QueueFull when workers + queue jobs are already queued or running."""
        with self.lock:
            active = sum(j.state in ("queued", "running") for j in self.jobs.values())
            if active >= self.workers + self.queue:
                raise QueueFull(self._retry_after(active))
            job_id = secrets.token_urlsafe(16)
            folder = self.root / job_id
            folder.mkdir()
            job = Job(job_id, rec, folder, time.time())
            self.jobs[job_id] = job
        self.pool.submit(self._run, job)
        return job

    def _retry_after(self, active: int) -> int:
        mean = sum(self.durations) / len(self.durations) if self.durations else _FIRST_GUESS_S
        waiting = max(1, active - self.workers + 1)
        return int(min(3600, max(1, math.ceil(mean * waiting / self.workers))))

    def _run(self, job: Job) -> None:
        job.state, job.started = "running", time.time()

        def progress(f: float) -> None:
            job.progress = max(job.progress, float(f))

        try:
            render(job.rec, job.folder, self.device, progress)
            job.state = "done"
        except UserError as e:
            job.error, job.state = str(e), "failed"
        except Exception:  # a bug: logged here with its traceback, the client sees one line
            log.exception("job %s failed", job.id)
            job.error, job.state = "internal error while generating (logged on the server)", "failed"
        finally:
            job.finished = time.time()
            with self.lock:
                self.durations = (self.durations + [job.finished - job.started])[-20:]
            if job.state == "failed":
                remove_folder(job.folder)

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        with self.lock:
            return self.jobs.get(job_id)

    def file(self, job: Job, fmt: str) -> Path:
        """The download of `fmt` for a finished job (exports are made once, one at a time per job)."""
        with job.export_lock:
            return export_file(job.folder, fmt)

    def expires_in(self, job: Job, now: Optional[float] = None) -> Optional[float]:
        if job.finished is None:
            return None
        return max(0.0, job.finished + self.expire_s - (time.time() if now is None else now))

    # -- expiry and shutdown -------------------------------------------------------------------------------
    def sweep(self, now: Optional[float] = None) -> list[str]:
        """Forget the jobs that ended more than expire_s before `now` and delete their folders; their ids."""
        now = time.time() if now is None else now
        with self.lock:
            gone = [j for j in self.jobs.values() if j.finished is not None and now - j.finished >= self.expire_s]
            for j in gone:
                del self.jobs[j.id]
        for j in gone:
            with j.export_lock:  # a download being made finishes first
                remove_folder(j.folder)
        return [j.id for j in gone]

    def start_sweeper(self) -> None:
        interval = min(60.0, max(1.0, self.expire_s / 4))

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sweep()
                except Exception:
                    log.exception("sweeper")

        self._sweeper = threading.Thread(target=loop, name="serve-sweeper", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        """Stop the sweeper, drop queued jobs, wait for running ones."""
        self._stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
