"""Torch-free image utilities shared by training, serving, tests and benchmarks.

One piece of code per idea: colour conversion, PSNR/SSIM, MATLAB-style bicubic resizing and the
tiler live here and nowhere else.
"""
