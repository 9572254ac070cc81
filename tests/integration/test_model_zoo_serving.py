"""The NTIRE 2022 peers served beside IMDeception: `model=`, GET /models, per-architecture tiling.

The session's Triton serves every registry variant (random-init weights for the peers: third-party
checkpoints are never in the repository); the gateway runs in-process against it.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from imdsr.imaging import codec
from imdsr.imaging.tiling import plan_tiles
from service.app import create_app
from service.settings import Settings
from training.infer import upscale_picture
from training.models import create_model, get_variant, list_variants
from training.summary import measure
from training.weights.store import load_model


def _photo(h: int, w: int) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:100 + h, 150:150 + w])


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(triton_server) -> TestClient:  # noqa: ANN001
    # Default settings but the Triton URL: each model's own tiling context applies.
    with TestClient(create_app(Settings(triton_url=triton_server.grpc_url, default_model="c4"))) as c:
        yield c


def _upscale(client: TestClient, rgb: np.ndarray, **params: object) -> tuple[np.ndarray, dict]:
    r = client.post("/upscale", content=_png(rgb), params=params, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")), r.headers


def _local(triton_server, variant: str, rgb: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """The same weights in PyTorch through the same picture pipeline, whole image at once."""
    model, _ = load_model(variant, triton_server.weights[variant])
    picture = codec.Picture(color=rgb, alpha=None, gray=False, source_format="PNG")
    return upscale_picture(model, picture, torch.device("cpu"), tile=0,
                           rule=get_variant(variant).tiling).picture.color


def test_models_lists_architecture_size_and_tiling(client: TestClient) -> None:
    r = client.get("/models")
    assert r.status_code == 200, r.text
    models = {m["variant"]: m for m in r.json()["models"]}
    assert set(list_variants()) <= set(models)  # every registry entry is served
    for variant in list_variants():
        info, spec = models[variant], get_variant(variant)
        c = measure(create_model(variant))
        assert (info["arch"], info["triton_name"]) == (spec.arch, spec.triton_name)
        assert (info["params"], info["flops"]) == (c.params, c.flops)
        assert info["tiling"] == {"context": spec.tiling.context, "align": spec.tiling.align,
                                  "min_side": spec.tiling.min_side,
                                  "whole_up_to": spec.tiling.whole_up_to}
    assert models["rlfn"]["params"] == 317_218 and models["c16nla"]["triton_name"] == "imdeception_c16nla"


@pytest.mark.parametrize("variant", ["rlfn", "efdn"])
def test_rlfn_and_efdn_run_whole_images_whole_and_match_pytorch(client: TestClient, triton_server,
                                                                variant: str) -> None:  # noqa: ANN001
    rgb = _photo(90, 130)
    # Their attention resamples to the window's size: tiles cannot be exact, so images up to
    # 1024 px run as one window whatever tile is asked for.
    served, headers = _upscale(client, rgb, model=variant, tile=32)
    assert headers["x-model"] == variant and headers["x-tiles"] == "1"
    diff = np.abs(served.astype(int) - _local(triton_server, variant, rgb).astype(int))
    assert diff.max() <= 1, diff.max()


@pytest.mark.parametrize("variant", ["rlfn", "efdn"])
def test_images_smaller_than_the_smallest_window_are_padded(client: TestClient, triton_server,
                                                            variant: str) -> None:  # noqa: ANN001
    rgb = _photo(9, 11)  # RLFN's pooling needs 15 px, EFDN's 5
    served, headers = _upscale(client, rgb, model=variant)
    assert headers["x-output-size"] == "44x36" and served.shape == (36, 44, 3)
    diff = np.abs(served.astype(int) - _local(triton_server, variant, rgb).astype(int))
    assert diff.max() <= 1, diff.max()


def test_imdn_tiles_match_its_whole_image_inference(client: TestClient, triton_server) -> None:  # noqa: ANN001
    rgb = _photo(96, 120)
    whole, headers = _upscale(client, rgb, model="imdn")  # fits one window
    assert headers["x-tiles"] == "1"
    tiled, headers = _upscale(client, rgb, model="imdn", tile=32)  # 32-px cores, 16 px context
    assert int(headers["x-tiles"]) == len(plan_tiles(96, 120, 32, 16, 1)) == 6
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 1, diff.max()
    # the published context is what makes it so: without it, seams
    with TestClient(create_app(Settings(triton_url=triton_server.grpc_url, tile_context=0))) as bare:
        seamed, _ = _upscale(bare, rgb, model="imdn", tile=32)
    assert np.abs(seamed.astype(int) - whole.astype(int)).max() > 1


def test_triton_names_work_and_unknown_models_are_named(client: TestClient) -> None:
    rgb = _photo(20, 24)
    _, headers = _upscale(client, rgb, model="imdeception_c4")
    assert headers["x-model"] == "imdeception_c4"
    r = client.post("/upscale", content=_png(rgb), params={"model": "swinir"},
                    headers={"Content-Type": "image/png"})
    assert r.status_code == 422
    assert "unknown model 'swinir'" in r.json()["detail"] and "rlfn" in r.json()["detail"]


def test_a_peer_can_be_the_default_model(triton_server) -> None:  # noqa: ANN001
    # /readyz asks for the default model before any request taught the gateway Triton's names.
    settings = Settings(triton_url=triton_server.grpc_url, default_model="rlfn")
    with TestClient(create_app(settings)) as fresh:
        r = fresh.get("/readyz")
        assert r.status_code == 200 and r.json()["model"] == "rlfn", r.text
        _, headers = _upscale(fresh, _photo(20, 24))
        assert headers["x-model"] == "rlfn"


def test_admission_starts_from_the_rate_each_model_publishes(triton_server) -> None:  # noqa: ANN001
    """Export writes each registry entry's starting rate into its config.pbtxt; the gateway reads
    it from Triton with the other traits, and the operator's map still overrides it."""
    rgb = _photo(64, 64)  # 0.066 output Mpx
    # A default no request could meet (hours of model time): only a published rate admits it.
    settings = Settings(triton_url=triton_server.grpc_url, default_seconds_per_mpx=1e5)
    with TestClient(create_app(settings)) as published:
        for variant in ("rlfn", "c4"):
            _, headers = _upscale(published, rgb, model=variant)
            assert headers["x-model"] in (variant, get_variant(variant).triton_name)
    override = Settings(triton_url=triton_server.grpc_url, seconds_per_mpx={"rlfn": 1e5})
    with TestClient(create_app(override)) as overridden:
        r = overridden.post("/upscale", content=_png(rgb), params={"model": "rlfn"},
                            headers={"Content-Type": "image/png"})
        assert r.status_code == 413 and "model time" in r.text, r.text
        _, headers = _upscale(overridden, rgb, model="c4")  # the others keep their own
