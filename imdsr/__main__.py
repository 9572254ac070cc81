"""``python -m imdsr``: the ``imdsr`` command without an installed entry point."""

from imdsr.cli import app

app(prog_name="imdsr")
