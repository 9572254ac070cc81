"""The command line stays torch-free until a command needs torch (the gateway image has none),
and the packages import one another without circles or back-arrows into the gateway."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.import_graph import cycles, import_graph


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


# --- the import graph --------------------------------------------------------------------------

PACKAGES = ("service", "imdsr", "training", "export", "bench", "triton_host")


def test_no_import_circle_among_the_packages() -> None:
    # A circle, even of imports inside functions, means neither module can be read, tested or
    # moved without the other (bench/cli.py and bench/zoo.py had one).
    graph = import_graph(PACKAGES)
    assert len(graph) > 50 and graph["bench.zoo"]  # the packages were read
    assert cycles(graph) == []


def test_the_gateway_imports_no_model_or_bench_code() -> None:
    # The gateway image has no torch and no training, export or bench code in use.
    graph = import_graph(PACKAGES)
    wrong = {m: sorted(t for t in targets if t.split(".")[0] in ("training", "export", "bench"))
             for m, targets in graph.items() if m.split(".")[0] == "service"}
    assert {m: t for m, t in wrong.items() if t} == {}


def test_the_graph_sees_lazy_and_relative_imports_but_not_type_checking_ones(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from pkg.c import C\n"
                              "else:\n    import os\n"
                              "from . import a\n")
    (pkg / "c.py").write_text("import pkg.b\n")
    graph = import_graph(["pkg"], tmp_path)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.b"}}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
