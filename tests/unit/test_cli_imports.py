"""The command line stays torch-free until a command needs torch (the gateway image has none)."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_gateway_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import imdsr.cli, service.app\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "from imdsr.cli import app\n"
        "names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}\n"
        "assert {'serve', 'triton', 'upscale', 'infer', 'train', 'export', 'bench'} <= names, names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_without_torch_installed_drops_only_the_torch_parts() -> None:
    # Simulate the gateway image: make `import torch` fail.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from imdsr.cli import app\n"
        "names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}\n"
        "assert {'serve', 'triton', 'upscale'} <= names, names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
