"""Files copied verbatim into every Python-backend model of the generated repository.

``model.py`` is what Triton runs; ``runtimes.py`` (ONNX Runtime / OpenVINO runners) sits beside it
and is also imported by the benchmarks, so Triton and ``imdsr bench`` time the same code.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_PY = HERE / "model.py"
RUNTIMES_PY = HERE / "runtimes.py"
BACKEND_FILES = (MODEL_PY, RUNTIMES_PY)
