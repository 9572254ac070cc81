"""imdsr: 4x super-resolution with IMDeception, served by NVIDIA Triton."""

__version__ = "0.1.0"
