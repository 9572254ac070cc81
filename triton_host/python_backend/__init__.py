"""Files copied verbatim into Python-backend models of the generated repository (not imported)."""

from pathlib import Path

MODEL_PY = Path(__file__).resolve().parent / "model.py"
