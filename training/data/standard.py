"""The standard SR sets (T91 + BSD200 = "291" for training; Set5, Set14, BSD100, Urban100 to
benchmark), copied from clones of the public repositories that hold them and verified against the
SHA-256 manifest committed beside this file (``standard_sets.json``).

The images are third-party and never committed: a user clones the repositories (the README says
how) and ``imdsr data standard`` copies the listed files into ``data/standard/<set>/``, refusing,
with the file named, anything missing or changed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from imdsr.digest import file_sha256

MANIFEST = Path(__file__).with_name("standard_sets.json")
DEFAULT_ROOT = Path("data/standard")
TRAIN_SETS = ("train291",)
BENCHMARKS = ("set5", "set14", "bsd100", "urban100")


class StandardSetError(ValueError):
    """A standard set that cannot be built or read as the manifest says."""


@dataclass(frozen=True)
class SetFile:
    name: str     # file name inside data/standard/<set>/
    source: str   # path inside the source repository
    sha256: str


@dataclass(frozen=True)
class StandardSet:
    name: str
    repo: str     # owner/name of the public repository holding the files
    title: str
    files: tuple[SetFile, ...]


def load_manifest(path: Path | None = None) -> dict[str, StandardSet]:
    raw = json.loads((path or MANIFEST).read_text())
    return {name: StandardSet(name, s["repo"], s["title"],
                              tuple(SetFile(**f) for f in s["files"]))
            for name, s in raw["sets"].items()}


def parse_set_names(text: str) -> list[str]:
    """``set5,bsd100`` -> names, each checked against the manifest (``all`` = every set)."""
    known = load_manifest()
    names = list(known) if text.strip() == "all" else [n.strip().lower() for n in text.split(",")
                                                     if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise StandardSetError(f"unknown set {', '.join(unknown) or repr(text)}; known: "
                               f"{', '.join(known)}")
    return names


def _find(entry: SetFile, sources: list[Path]) -> Path | None:
    """The file in a clone (its path in the repository) or in a flat folder (its name)."""
    for src in sources:
        for candidate in (src / entry.source, src / entry.name, src / Path(entry.source).name):
            if candidate.is_file():
                return candidate
    return None


def build_set(name: str, sources: list[Path], root: Path = DEFAULT_ROOT) -> Path:
    """Copy set ``name`` from ``sources`` into ``root/name``, verified file by file."""
    spec = load_manifest()[name]
    missing, changed = [], []
    found: list[tuple[SetFile, Path]] = []
    for entry in spec.files:
        path = _find(entry, sources)
        if path is None:
            missing.append(entry.source)
        elif file_sha256(path) != entry.sha256:
            changed.append(str(path))
        else:
            found.append((entry, path))
    if missing or changed:
        lines = [f"{name}: {len(missing)} missing and {len(changed)} changed of "
                 f"{len(spec.files)} files (from {spec.repo}; pass a clone of it with --from)"]
        lines += [f"  missing: {m}" for m in missing[:10]]
        lines += [f"  changed (sha256 differs from the manifest): {c}" for c in changed[:10]]
        if len(missing) + len(changed) > 20:
            lines.append("  ...")
        raise StandardSetError("\n".join(lines))
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    for entry, path in found:
        dst = out / entry.name
        if not (dst.is_file() and file_sha256(dst) == entry.sha256):
            shutil.copyfile(path, dst)
    return out


def set_files(name: str, root: Path = DEFAULT_ROOT) -> list[Path]:
    """The files of a built set, verified against the manifest (a clear error names any gap)."""
    spec = load_manifest()[name]
    folder = root / name
    if not folder.is_dir():
        raise StandardSetError(f"{name}: {folder} does not exist; build it with "
                               f"`imdsr data standard {name} --from CLONE` (a clone of {spec.repo})")
    bad = [e.name for e in spec.files
           if not (folder / e.name).is_file() or file_sha256(folder / e.name) != e.sha256]
    if bad:
        raise StandardSetError(f"{name}: {len(bad)} of {len(spec.files)} files missing or changed "
                               f"in {folder} (first: {bad[0]}); rebuild it with "
                               f"`imdsr data standard {name} --from CLONE`")
    return [folder / e.name for e in spec.files]


def benchmark_leaks(files: list[Path]) -> list[Path]:
    """The files among ``files`` that are images of a benchmark set (by SHA-256): training on
    them would make every benchmark figure a lie."""
    held = {f.sha256 for name, s in load_manifest().items() if name in BENCHMARKS for f in s.files}
    return [f for f in files if file_sha256(f) in held]


def write_manifest(sets: dict[str, tuple[str, str, list[tuple[str, Path, Path]]]],
                   path: Path | None = None) -> None:
    """Maintainers' tool: ``{set: (repo, title, [(name, path in repo, file)])}`` -> manifest."""
    out = {"sets": {name: {"repo": repo, "title": title,
                           "files": [{"name": n, "source": s.as_posix(), "sha256": file_sha256(f)}
                                     for n, s, f in files]}
                    for name, (repo, title, files) in sets.items()}}
    (path or MANIFEST).write_text(json.dumps(out, indent=1) + "\n")
