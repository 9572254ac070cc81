"""Upscale an image file straight through Triton's gRPC API, tiled, without the gateway.

    python examples/grpc_client.py IN.png OUT.png [--url 127.0.0.1:8001] [--model c16nla]

It runs the gateway's own picture pipeline (``imdsr.imaging.pipeline``: decode, tile, stitch,
alpha, encode) with Triton's synchronous gRPC client running the tiles, so the result is the image
the HTTP API returns. Tiles go one request each, several in flight, as the gateway sends them;
Triton's dynamic batcher groups them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_VARIANT, INPUT_NAME, OUTPUT_NAME, WIRE_DTYPE
from imdsr.imaging.codec import decode, default_format, encode, format_for_path
from imdsr.imaging.pipeline import upscale_sync
from imdsr.imaging.tiling import DEFAULT_TILE
from imdsr.imaging.windows import TileTooLargeError, WindowTooSmallError, choose_tile
from service.model_traits import ModelTraits
from training.models.registry import triton_name as triton_model_name


def make_infer(client: grpcclient.InferenceServerClient, model: str):  # noqa: ANN201
    """``infer(NCHW float32 in [0, 1]) -> NCHW float32, x4`` for one Triton model."""
    name = triton_model_name(model)

    def infer(batch: np.ndarray) -> np.ndarray:
        tensor = grpcclient.InferInput(INPUT_NAME, list(batch.shape), WIRE_DTYPE)
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
    parser.add_argument("--tile", type=int, default=None,
                        help=f"tile core in LR px; 0: the whole image (default: {DEFAULT_TILE}, "
                        "shrunk to the model's window limit)")
    parser.add_argument("--context", type=int, default=None,
                        help="LR px around each tile (default: the model's, from its config)")
    parser.add_argument("--in-flight", type=int, default=4, help="tiles sent at once")
    args = parser.parse_args()

    picture = decode(args.source.read_bytes(), max_pixels=1 << 26)
    client = grpcclient.InferenceServerClient(args.url)
    if not client.is_model_ready(triton_model_name(args.model)):
        raise SystemExit(f"model {args.model!r} is not ready on {args.url}")
    # The model's tiling rule (context, alignment, smallest window) as its config publishes it.
    name = triton_model_name(args.model)
    traits = ModelTraits.from_config(name, client.get_model_config(name, as_json=True)["config"])
    rule = traits.with_context(args.context)
    try:  # the gateway's own choice, so no window goes out that the model's engine refuses
        tile = choose_tile(rule, traits.limits, picture.height, picture.width, requested=args.tile)
    except (TileTooLargeError, WindowTooSmallError) as exc:
        raise SystemExit(str(exc)) from exc
    result = upscale_sync(picture, make_infer(client, args.model), tile=tile, rule=rule,
                          in_flight=args.in_flight).picture
    fmt = format_for_path(args.output) or default_format(picture.source_format)
    args.output.write_bytes(encode(result, fmt))
    print(f"{args.source} {picture.width}x{picture.height} -> {args.output} "
          f"{result.width}x{result.height} ({fmt.value})")


if __name__ == "__main__":
    main()
