"""The refusal of any ``IMDSR_`` environment variable that no view of the settings defines.

Every variable is a field of one view of the one settings model (``imdsr/settings.py``: the
gateway's ``Settings``, the command line's views, and ``ExternalVariables`` for those read straight
from the environment). ``imdsr`` checks the environment against them before any command runs, so a
misspelt variable (the timeout without its ``_S``) stops start-up with a message naming it and the
closest known name, instead of being silently ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from imdsr.settings import PREFIX, variables


class UnknownVariableError(ValueError):
    """An ``IMDSR_`` variable that nothing reads."""


def known_variables() -> set[str]:
    """Every variable of the registered views (the gateway's only once ``service.settings`` is
    imported: ``imdsr.cli.known_variables`` does that)."""
    return set(variables())


def check_environment(known: Iterable[str], environ: Mapping[str, str]) -> None:
    """Raise ``UnknownVariableError`` naming each ``IMDSR_`` variable of ``environ`` not in
    ``known``, with the closest known name."""
    names = set(known)
    unknown = sorted(v for v in environ if v.startswith(PREFIX) and v not in names)
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise UnknownVariableError(
        f"unknown environment variable{'s' if len(unknown) > 1 else ''}: {', '.join(parts)}; "
        "nothing reads it, so it would be ignored: fix or unset it")
