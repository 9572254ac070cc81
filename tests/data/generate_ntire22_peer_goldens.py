"""Made the peers' golden fixtures once; kept to say exactly how (not run by the tests).

    python tests/data/generate_ntire22_peer_goldens.py /path/to/NTIRE2022_ESR

For each published checkpoint of an IMDeception peer it writes, from the NTIRE 2022 ESR
repository's own code (ofsoundof/NTIRE2022_ESR, models/ and model_zoo/):

* ``ntire22_<file>_layout.json``: the checkpoint's tensor names and shapes, in its order (no values);
* ``ntire22_<file>_golden.npz``: inputs ``x_*`` (RGB in [0, 1]) and the reference network's
  outputs ``y_*`` with the synthetic weights of IMDECEPTION.md's rule (tensor i of shape S holds
  a*sin(0.1*j + i)), fed and read in the range the network was published for (x255 for RLFN and
  EFDN, so their outputs are divided by 255 here).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.support.reference import sin_weights  # noqa: E402

SHAPES = {"33x50": (33, 50), "64x48": (64, 48)}


def _networks(root: Path):  # the reference code's own classes, as test_demo.py builds them
    sys.path.insert(0, str(root))
    from models.imdn_baseline import IMDN
    from models.team04_rlfn import RLFN_cut
    from models.team05_efdn.plainsr import PLAINRFDN

    return {
        "imdn_baseline.pth": (lambda: IMDN(in_nc=3, out_nc=3, nc=64, nb=8, upscale=4), 1.0),
        "team26_imdn_nb7.pth": (lambda: IMDN(in_nc=3, out_nc=3, nc=64, nb=7, upscale=4), 1.0),
        "team04_rlfn.pth": (lambda: RLFN_cut(in_nc=3, out_nc=3), 255.0),
        "team05_efdn.pt": (lambda: PLAINRFDN(), 255.0),
    }


def main(root: Path) -> None:
    rng = np.random.default_rng(2022)
    for file, (build, value_range) in _networks(root).items():
        published = torch.load(root / "model_zoo" / file, map_location="cpu", weights_only=True)
        layout = [(name, tuple(t.shape)) for name, t in published.items()]
        stem = file.rsplit(".", 1)[0]
        (HERE / f"ntire22_{stem}_layout.json").write_text(json.dumps(
            {"checkpoint": file, "tensors": [{"name": n, "shape": list(s)} for n, s in layout]},
            indent=1) + "\n")
        net = build().eval()
        net.load_state_dict({k: torch.from_numpy(v) for k, v in sin_weights(layout).items()})
        arrays = {}
        for key, (h, w) in SHAPES.items():
            x = rng.random((1, 3, h, w), dtype=np.float32)
            with torch.inference_mode():
                y = net(torch.from_numpy(x) * value_range) / value_range
            arrays[f"x_{key}"], arrays[f"y_{key}"] = x, y.numpy()
        np.savez_compressed(HERE / f"ntire22_{stem}_golden.npz", **arrays)
        print(file, {k: float(np.abs(v).max()) for k, v in arrays.items() if k.startswith("y_")})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
