"""Weights: the project's safetensors format and the importer of the published NTIRE 2022 checkpoint."""
