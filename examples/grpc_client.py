"""Upscale an image file straight through Triton's gRPC API, tiled, without the gateway.

    python examples/grpc_client.py IN.png OUT.png [--url 127.0.0.1:8001] [--model c16nla]

It uses the same tiler as the gateway (``imdsr.imaging.tiling``), so the result is the same
image the HTTP API returns (colour only: alpha is resized as the gateway does it). Tiles go one
request each, as the gateway sends them; Triton's dynamic batcher groups them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_VARIANT, INPUT_NAME, OUTPUT_NAME, SCALE
from imdsr.contract import model_name as triton_model_name
from imdsr.imaging.tiling import DEFAULT_CONTEXT, DEFAULT_TILE, upscale_tiled
from service.codec import OutputFormat, decode, default_format, encode
from service.resampling import BICUBIC, resize_plane


def make_infer(client: grpcclient.InferenceServerClient, model: str):  # noqa: ANN201
    """``infer(NCHW float32 in [0, 1]) -> NCHW float32, x4`` for one Triton model."""
    name = triton_model_name(model)

    def infer(batch: np.ndarray) -> np.ndarray:
        tensor = grpcclient.InferInput(INPUT_NAME, list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        result = client.infer(name, [tensor], outputs=[grpcclient.InferRequestedOutput(OUTPUT_NAME)])
        return result.as_numpy(OUTPUT_NAME)

    return infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--url", default=f"127.0.0.1:{DEFAULT_GRPC_PORT}", help="Triton gRPC")
    parser.add_argument("--model", default=DEFAULT_VARIANT)
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--context", type=int, default=DEFAULT_CONTEXT)
    args = parser.parse_args()

    picture = decode(args.source.read_bytes(), max_pixels=1 << 26)
    client = grpcclient.InferenceServerClient(args.url)
    if not client.is_model_ready(triton_model_name(args.model)):
        raise SystemExit(f"model {args.model!r} is not ready on {args.url}")
    color = upscale_tiled(picture.color, make_infer(client, args.model), SCALE, args.tile,
                          args.context)
    alpha = picture.alpha
    if alpha is not None:
        alpha = resize_plane(alpha, color.shape[:2], BICUBIC)
    suffix = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".png": "png"}
    fmt = OutputFormat(suffix.get(args.output.suffix.lower(), default_format(picture.source_format)))
    args.output.write_bytes(encode(picture.with_planes(color, alpha), fmt))
    print(f"{args.source} {picture.width}x{picture.height} -> {args.output} "
          f"{color.shape[1]}x{color.shape[0]} ({fmt.value})")


if __name__ == "__main__":
    main()
