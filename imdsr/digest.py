"""File digests: what weights, graphs and generated files are identified by."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex; read in blocks so large files need little memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safetensors_sha256(path: str | Path) -> str:
    """SHA-256 of a safetensors file's content: its header with keys sorted, then its tensor
    bytes. The library writes the header's entries (the metadata among them) in hash-map order,
    which changes from one process to the next, so the same tensors and metadata saved twice can
    differ in their bytes; this digest does not. Raises ValueError for a file that is not one."""
    with Path(path).open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its header length)")
        size = int.from_bytes(head, "little")
        if size > Path(path).stat().st_size - 8:  # another format's first bytes: no such header
            raise ValueError(f"{path}: not a safetensors file (its header length is past its end)")
        try:
            header = json.loads(f.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a safetensors file ({exc})") from exc
        digest = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
