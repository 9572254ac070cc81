"""The one error the Triton host raises: what every part of it (install, options, process,
supervisor) reports, and what ``imdsr triton`` and ``imdsr serve`` turn into an exit status."""

from __future__ import annotations


class TritonLaunchError(RuntimeError):
    """Triton could not be found, started, or did not become ready."""
