"""The gateway's side of video (issue 28): the clip's limits and encoder from the settings, its
refusals as HTTP errors (``refusals.py``), and each frame through the same plan, admission and
Triton path as a picture (``frames.py``). The media work itself is ``imdsr/video/``.
"""
