"""Video through the picture pipeline: probe a clip, then stream it frame by frame through an
upscaler into a new container, its sound and subtitles carried.

Generic media code with no HTTP in it (the gateway's adapter is ``service/video/``): ``probe``
reads the header (``probe.py``), ``limits`` refuses what is too long or too large before any
decoding (``limits.py``), ``output`` chooses the encoder and the final size (``output.py``),
``carry`` decides what happens to each other stream (``carry.py``) and ``transcode`` streams the
clip (``transcode.py``). PyAV (FFmpeg's libraries, bundled in the ``av`` wheel) does the media
work; nothing here imports torch.
"""
