"""Helpers shared by the test kinds (unit, integration, deploy); no tests here."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
DATA = ROOT / "tests" / "data"               # fixtures kept with the tests (see its README.md)
