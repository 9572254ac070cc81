"""Weights shipped with imdsr (see docs/MODEL_CARD.md); a package so wheels carry them."""
