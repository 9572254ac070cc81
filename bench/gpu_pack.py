"""Write .whl/, what a lent GPU machine carries for ``bench/gpu_check.sh`` (``make gpu-pack``).

The pinned wheels of ``bench/gpu_wheels.txt`` (downloaded with pip for Python 3.12 manylinux
x86_64 into a cache, then copied or slimmed), a shared libpython 3.12 as a fallback for a machine
without one, and as many BSD100 HR images as the rest of the carry holds. The carry's limit is
the working tree plus these at most 64 MiB, and 60 MiB for these: the total is printed, and the
script fails rather than write more.

    .venv/bin/python bench/gpu_pack.py [--bsd100 data/standard/bsd100] [--no-bsd100]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS_TXT = ROOT / "bench" / "gpu_wheels.txt"
PACK = ROOT / ".whl"
CACHE = Path.home() / ".cache" / "imdsr" / "gpu-wheels"
MIB = 1 << 20
LIMIT_ALL = 64 * MIB        # the device tool: working tree + carried paths
LIMIT_WHEELS = 60 * MIB     # issue 22: at most 60 MiB of wheels
MARGIN = 2 * MIB            # room for the tree to grow before the check runs
PY = "3.12"
PLATFORMS = ("manylinux_2_35_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def read_wheels(path: Path = WHEELS_TXT) -> list[tuple[str, str, str]]:
    """[(name, version, how)] from bench/gpu_wheels.txt."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, how = line.split()
        name, version = spec.split("==")
        if how not in ("wheel", "slim:site", "slim:stub"):
            raise ValueError(f"{path}: {raw!r}: unknown way {how!r}")
        out.append((name, version, how))
    return out


def _norm(name: str) -> str:
    return name.lower().replace("-", "_")


def download(name: str, version: str, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = [p for p in cache.glob("*.whl")
             if _norm(p.name.split("-")[0]) == _norm(name) and p.name.split("-")[1] == version]
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", PY, "--implementation", "cp", "-d", str(cache), f"{name}=={version}"]
    for platform in PLATFORMS:
        cmd[cmd.index("-d"):cmd.index("-d")] = ["--platform", platform]
    subprocess.run(cmd, check=True)
    return download(name, version, cache)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- slimming
def _pytriton_keeps(name: str) -> bool:
    stubs = "pytriton/tritonserver/python_backend_stubs/"
    if name.startswith(stubs) and not name.startswith(f"{stubs}{PY}/"):
        return False
    return not name.startswith("nvidia_pytriton.libs/libpython3")


def _needed(data: bytes) -> list[str]:
    """The DT_NEEDED names of an ELF file (readelf)."""
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        out = subprocess.run(["readelf", "-d", f.name], capture_output=True, text=True, check=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def _imagecodecs_keeps(zf: zipfile.ZipFile) -> set[str]:
    """Its Python files, the PNG module (and the two it loads) and the libraries they link."""
    names = zf.namelist()
    modules = [n for n in names if n.startswith("imagecodecs/_")
               and n.split("/")[1].split(".")[0] in ("_png", "_shared", "_imcd")]
    keep = {n for n in names if not n.endswith(".so") and not n.startswith("imagecodecs.libs/")}
    keep |= set(modules)
    libs = {n.split("/", 1)[1]: n for n in names if n.startswith("imagecodecs.libs/")}
    todo = list(modules)
    while todo:
        for lib in _needed(zf.read(todo.pop())):
            if lib in libs and libs[lib] not in keep:
                keep.add(libs[lib])
                todo.append(libs[lib])
    return keep


def _numpy_keeps(name: str) -> bool:
    return "/tests/" not in name and not name.startswith(("numpy/f2py/", "numpy/distutils/"))


def slim_members(wheel: Path, name: str) -> tuple[list[zipfile.ZipInfo], int]:
    """(entries kept, bytes left out) of ``wheel``."""
    with zipfile.ZipFile(wheel) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if _norm(name) == "imagecodecs":
            kept = _imagecodecs_keeps(zf)
            keep = [i for i in infos if i.filename in kept]
        elif _norm(name) == "nvidia_pytriton":
            keep = [i for i in infos if _pytriton_keeps(i.filename)]
        elif _norm(name) == "numpy":
            keep = [i for i in infos if _numpy_keeps(i.filename)]
        else:
            raise ValueError(f"no slimming rule for {name}")
    dropped = sum(i.file_size for i in infos) - sum(i.file_size for i in keep)
    return keep, dropped


def write_tar(out: Path, wheels: list[tuple[Path, str]]) -> dict[str, int]:
    """One .tar.xz of the kept files of each wheel (modes from the wheel); bytes left out per wheel."""
    dropped = {}
    with tarfile.open(out, "w:xz", preset=9) as tar:
        for wheel, name in wheels:
            keep, dropped[wheel.name] = slim_members(wheel, name)
            with zipfile.ZipFile(wheel) as zf:
                for info in keep:
                    data = zf.read(info)
                    member = tarfile.TarInfo(info.filename)
                    member.size = len(data)
                    mode = (info.external_attr >> 16) & 0o777
                    member.mode = mode or (0o755 if data[:4] == b"\x7fELF" else 0o644)
                    member.mtime = 0
                    tar.addfile(member, io.BytesIO(data))
    return dropped


# --------------------------------------------------------------------------- the rest
def _pythons() -> list[str]:
    found = [shutil.which(f"python{PY}")]
    found += sorted(str(p) for p in (Path.home() / ".pyenv" / "versions").glob(f"{PY}*/bin/python{PY}"))
    return [p for p in found if p]


def libpython(out: Path) -> str:
    """A shared libpython3.12, debug info stripped, xz-compressed: from a python3.12 here."""
    query = ("import sys, sysconfig as s; print(s.get_config_var('LIBDIR')); "
             "print(s.get_config_var('INSTSONAME')); print(sys.version.split()[0])")
    for exe in _pythons():
        done = subprocess.run([exe, "-c", query], capture_output=True, text=True)
        if done.returncode != 0:
            continue
        libdir, soname, version = done.stdout.split()
        lib = Path(libdir) / soname
        if not lib.is_file() or not soname.endswith(".so.1.0"):
            continue
        data = lib.read_bytes()
        if shutil.which("strip"):
            stripped = out.with_suffix(".tmp")
            subprocess.run(["strip", "--strip-debug", "-o", str(stripped), str(lib)], check=True)
            data = stripped.read_bytes()
            stripped.unlink()
        out.write_bytes(lzma.compress(data, preset=9))
        return f"{lib} (Python {version}), {len(data) / MIB:.1f} MiB stripped"
    return f"no Python {PY} with a shared libpython here: no fallback written"


def tree_bytes() -> int:
    """What the device tool copies besides the carry: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / p).stat().st_size for p in out.decode().split("\0")
               if p and (ROOT / p).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bsd100", type=Path, default=ROOT / "data/standard/bsd100")
    ap.add_argument("--no-bsd100", action="store_true")
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args(argv)

    tree = tree_bytes()
    limit = min(LIMIT_WHEELS, LIMIT_ALL - tree - MARGIN)
    shutil.rmtree(PACK, ignore_errors=True)
    PACK.mkdir()
    lines = [f"# .whl/: written by bench/gpu_pack.py from {WHEELS_TXT.relative_to(ROOT)}", ""]
    site, stub = [], []
    for name, version, how in read_wheels():
        wheel = download(name, version, args.cache)
        lines.append(f"{wheel.name}  sha256 {_sha256(wheel)}  {how}")
        if how == "wheel":
            shutil.copyfile(wheel, PACK / wheel.name)
        else:
            (site if how == "slim:site" else stub).append((wheel, name))
    for tar_name, wheels in (("site-slim.tar.xz", site), ("stub-site.tar.xz", stub)):
        if wheels:
            print(f"slimming {', '.join(w.name for w, _ in wheels)} into {tar_name} ...", flush=True)
            dropped = write_tar(PACK / tar_name, wheels)
            lines += [f"{tar_name}: {w} with {d / MIB:.1f} MiB of files left out" for w, d in dropped.items()]
    lines.append(f"libpython3.12.so.1.0.xz: {libpython(PACK / 'libpython3.12.so.1.0.xz')}")
    used = folder_bytes(PACK)
    if not args.no_bsd100 and args.bsd100.is_dir():
        images = sorted(args.bsd100.glob("*.png"))
        dest = PACK / "bsd100"
        dest.mkdir()
        taken = 0
        for image in images:
            if used + image.stat().st_size > limit - 256 * 1024:
                break
            shutil.copyfile(image, dest / image.name)
            used += image.stat().st_size
            taken += 1
        lines.append(f"bsd100/: {taken} of {len(images)} HR images from {args.bsd100}")
    elif not args.no_bsd100:
        lines.append(f"bsd100/: none ({args.bsd100} absent: `imdsr data standard bsd100` writes it)")
    used = folder_bytes(PACK)
    lines.append(f"total {used / MIB:.1f} MiB (limit {limit / MIB:.1f} MiB: 64 MiB less the working tree's "
                 f"{tree / MIB:.1f} MiB and {MARGIN // MIB} MiB margin, at most 60)")
    (PACK / "MANIFEST.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if used > limit:
        print(f"error: .whl/ is {used / MIB:.1f} MiB, over {limit / MIB:.1f} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
