"""Made SRneXt's golden fixtures once; kept to say exactly how (not run by the tests).

    python tests/data/generate_ntire23_srnext_golden.py /path/to/NTIRE2023_ESR

From FRL Team 05's own code and checkpoint (github.com/Zhang9317112/NTIRE2023_ESR, MIT:
``models/team05_exnet.py``, ``model_zoo/team05_exnet.pth``), as its ``test_demo.py`` builds it,
this writes, like ``generate_ntire22_peer_goldens.py`` does for the NTIRE 2022 peers:

* ``ntire23_team05_exnet_layout.json``: the checkpoint's tensor names and shapes (its ``params``
  entry), in its order (no values);
* ``ntire23_team05_exnet_golden.npz``: inputs ``x_*`` (RGB in [0, 1]) and the reference network's
  outputs ``y_*`` with the synthetic weights of IMDECEPTION.md's rule, fed x255 and read /255
  (the network was published for [0, 255]).

The team's file registers its class with BasicSR; a stand-in registry is all it needs from it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.support.reference import sin_weights  # noqa: E402

SHAPES = {"33x50": (33, 50), "64x48": (64, 48)}
FILE = "team05_exnet.pth"


def _exnet(root: Path) -> type:
    registry = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    for name in ("basicsr", "basicsr.utils", "basicsr.utils.registry"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["basicsr.utils.registry"].ARCH_REGISTRY = registry  # type: ignore[attr-defined]
    spec = importlib.util.spec_from_file_location("team05_exnet", root / "models" / "team05_exnet.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.EXnet


def main(root: Path) -> None:
    rng = np.random.default_rng(2023)
    published = torch.load(root / "model_zoo" / FILE, map_location="cpu", weights_only=True)["params"]
    layout = [(name, tuple(t.shape)) for name, t in published.items()]
    (HERE / "ntire23_team05_exnet_layout.json").write_text(json.dumps(
        {"checkpoint": FILE, "tensors": [{"name": n, "shape": list(s)} for n, s in layout]},
        indent=1) + "\n")
    net = _exnet(root)(upscale=4, num_in_ch=3, num_out_ch=3, task="lsr", n_l=26, dim=35,
                       kernel_size=15).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sin_weights(layout).items()})
    arrays = {}
    for key, (h, w) in SHAPES.items():
        x = rng.random((1, 3, h, w), dtype=np.float32)
        with torch.inference_mode():
            y = net(torch.from_numpy(x) * 255.0) / 255.0
        arrays[f"x_{key}"], arrays[f"y_{key}"] = x, y.numpy()
    np.savez_compressed(HERE / "ntire23_team05_exnet_golden.npz", **arrays)
    print(FILE, {k: float(np.abs(v).max()) for k, v in arrays.items() if k.startswith("y_")})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
