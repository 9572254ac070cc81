"""Build an HR training set from a folder of images or from Debian's wallpaper packages.

The wallpaper packages mix photographs with rendered artwork; SR trained on flat vector art
learns little about photos, so ``is_photo`` keeps only images that look like photographs.
Wallpapers also ship the same picture under many names (one per screen size): files are
deduplicated by the SHA-256 of their bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEBIAN_PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MIN_SIDE = 1000          # smaller renditions are previews or phone crops of a bigger file
MIN_COLOUR_FRACTION = 0.005  # distinct colours / pixels on a 512^2 centre crop; art is flat
MANIFEST = "manifest.json"


@dataclass
class PhotoEntry:
    file: str       # relative to the set's folder
    sha256: str
    width: int
    height: int
    source: str     # where it came from


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def is_photo(path: Path) -> tuple[bool, str]:
    """Heuristic photo test; returns (keep, reason)."""
    if "screenshot" in path.name.lower():
        return False, "preview screenshot"
    # Debian's wallpaper photos ship as JPEG; the rendered artwork as PNG (often with alpha).
    if path.suffix.lower() not in {".jpg", ".jpeg"}:
        return False, "not JPEG (rendered artwork in these packages)"
    with Image.open(path) as im:
        w, h = im.size
        if min(w, h) < MIN_SIDE:
            return False, f"small rendition {w}x{h}"
        rgb = np.asarray(im.convert("RGB"))
    cy, cx = h // 2, w // 2
    crop = rgb[max(cy - 256, 0) : cy + 256, max(cx - 256, 0) : cx + 256].reshape(-1, 3)
    packed = crop[:, 0].astype(np.int64) << 16 | crop[:, 1].astype(np.int64) << 8 | crop[:, 2]
    frac = len(np.unique(packed)) / len(packed)
    if frac < MIN_COLOUR_FRACTION:
        return False, f"flat colours ({frac:.4f} distinct)"
    return True, "photo"


def fetch_debian_wallpapers(workdir: Path) -> Path:
    """``apt-get download`` the wallpaper packages and ``dpkg -x`` them under ``workdir``."""
    debs, tree = workdir / "debs", workdir / "extract"
    debs.mkdir(parents=True, exist_ok=True)
    tree.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob("*.deb")):
        subprocess.run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True)
    return tree


def build_photo_set(sources: list[Path], out_dir: Path, filter_photos: bool = True) -> list[PhotoEntry]:
    """Copy unique photos from ``sources`` into ``out_dir`` and write ``manifest.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    entries: list[PhotoEntry] = []
    rejected: list[dict[str, str]] = []
    for src in sources:
        for path in list_images(src):
            digest = sha256_file(path)
            if digest in seen:
                continue
            seen.add(digest)
            if filter_photos:
                keep, reason = is_photo(path)
                if not keep:
                    rejected.append({"file": str(path), "reason": reason})
                    continue
            name = f"{digest[:12]}{path.suffix.lower()}"
            shutil.copyfile(path, out_dir / name)
            with Image.open(path) as im:
                w, h = im.size
            entries.append(PhotoEntry(name, digest, w, h, str(path)))
    manifest = {"count": len(entries), "photos": [asdict(e) for e in entries],
                "rejected": rejected}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return entries


def build_from_debian(out_dir: Path) -> list[PhotoEntry]:
    # The packages unpack beside the set (same file system); on a fresh clone `data/` is not there.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        tree = fetch_debian_wallpapers(Path(tmp))
        return build_photo_set([tree], out_dir)


def find_hr_images(root: Path, holdout: int = -1) -> tuple[list[Path], list[Path]]:
    """(train, valid) HR files under ``root``.

    DIV2K/Flickr2K layout (``*_train_HR`` / ``*_valid_HR`` folders) is split as published; a
    photo set with a manifest, or any folder of images, gets every 8th image (by name) for
    validation so the split is stable (``holdout`` = -1); ``holdout`` = N holds out N images
    evenly spaced by name, 0 none.
    """
    train_dirs = sorted(p for p in root.glob("*_train_HR") if p.is_dir())
    valid_dirs = sorted(p for p in root.glob("*_valid_HR") if p.is_dir())
    if train_dirs:
        train = [f for d in train_dirs for f in list_images(d)]
        valid = [f for d in valid_dirs for f in list_images(d)]
        return train, valid
    files = list_images(root)
    if not files:
        raise FileNotFoundError(f"no images under {root}")
    if holdout >= 0:
        picks = np.linspace(0, len(files), holdout, endpoint=False, dtype=int) if holdout else []
        valid = [files[i] for i in sorted(set(int(i) for i in picks))]
    else:
        valid = files[3::8]
    held = set(valid)
    return [f for f in files if f not in held], valid
