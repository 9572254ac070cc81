"""examples/grpc_client.py against the real Triton: the gateway's tile choice, window limits and
all, so a tile the model's windows cannot take is refused before anything is sent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support import ROOT

EXAMPLE = ROOT / "examples" / "grpc_client.py"


def _run(triton_server, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run([sys.executable, str(EXAMPLE), *args, "--url", triton_server.grpc_url,
                           "--model", "c4"], capture_output=True, text=True, timeout=300)


def test_example_upscales_and_refuses_a_tile_the_model_cannot_take(triton_server,  # noqa: ANN001
                                                                   tmp_path: Path) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(src)
    done = _run(triton_server, str(src), str(dst), "--tile", "32")
    assert done.returncode == 0, done.stderr
    with Image.open(dst) as out:
        assert out.size == (4 * 90, 4 * 70)
    refused = _run(triton_server, str(src), str(tmp_path / "never.png"), "--tile", "4096")
    assert refused.returncode == 1
    assert "accepts windows up to" in refused.stderr and "tile must be at most" in refused.stderr
    assert not (tmp_path / "never.png").exists()
