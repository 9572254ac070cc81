"""Job inputs and results as files in ``IMDSR_JOBS_DIR``: ``inputs/<id>``, ``results/<id>``.

Written atomically (a temporary file in the same folder, flushed to disk, then renamed over the
name), so a reader or a restarted gateway sees a whole file or none, never part of one. Results
are answered from the file (``FileResponse`` streams it), never held in the gateway's memory. Ids
are ``secrets.token_urlsafe`` (letters, digits, ``-`` and ``_``): safe as file names, and checked
against that shape before any path is made of one.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# A temporary file older than this is what a killed gateway left mid-write.
STALE_TMP_S = 3600.0


class JobFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, kind: str, job_id: str) -> Path:
        if not ID_PATTERN.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / kind / job_id

    def input(self, job_id: str) -> Path:
        return self._path("inputs", job_id)

    def result(self, job_id: str) -> Path:
        return self._path("results", job_id)

    def partial(self, path: Path) -> Path:
        """A temporary file beside ``path`` to write it in (``sweep`` removes one a killed
        gateway left); ``commit`` puts it in place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"

    def write(self, path: Path, data: bytes) -> None:
        """``data`` at ``path`` whole, or nothing there (blocking: call it in a thread)."""
        tmp = self.partial(path)
        try:
            with tmp.open("wb") as f:
                f.write(data)
            self.commit(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def commit(self, tmp: Path, path: Path) -> int:
        """The written ``tmp`` (``partial``) renamed over ``path``, both flushed to disk first;
        its size (blocking: call it in a thread). A clip's result is written there by the
        transcode, then committed the same way."""
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return size

    def remove(self, job_id: str) -> None:
        for path in (self.input(job_id), self.result(job_id)):
            path.unlink(missing_ok=True)

    def sweep(self, now: float | None = None) -> None:
        """Delete temporary files left by a gateway killed while writing."""
        now = time.time() if now is None else now
        for kind in ("inputs", "results"):
            for tmp in (self.root / kind).glob(".*.tmp"):
                try:
                    if now - tmp.stat().st_mtime > STALE_TMP_S:
                        tmp.unlink(missing_ok=True)
                except FileNotFoundError:
                    continue
