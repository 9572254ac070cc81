"""The NTIRE peers served beside IMDeception: `model=`, GET /models, per-architecture tiling.

The session's Triton serves every registry variant (random-init weights for the peers: third-party
checkpoints are never in the repository); the gateway runs in-process against it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

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
    # on the image padded to its 64-px window bucket (128x128)
    assert int(headers["x-tiles"]) == len(plan_tiles(128, 128, 32, 16, 1)) == 9
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


# --- SRneXt (issue 24): served through the gateway like the NTIRE 2022 peers --------------------


def test_srnext_answers_and_matches_pytorch_whole_image(client: TestClient, triton_server) -> None:  # noqa: ANN001
    rgb = _photo(96, 120)  # one window at the gateway's default tile
    served, headers = _upscale(client, rgb, model="srnext")
    assert headers["x-model"] == "srnext" and headers["x-tiles"] == "1"
    assert headers["x-output-size"] == "480x384"
    diff = np.abs(served.astype(int) - _local(triton_server, "srnext", rgb).astype(int))
    assert diff.max() <= 1, diff.max()


def test_srnext_tiles_are_placed_by_its_registry_rule(client: TestClient, triton_server) -> None:  # noqa: ANN001
    """A tiled request runs the registry's rule (context 16, align 1) and gives what PyTorch's
    tiling by that rule gives.

    The rule's promise (every pixel within one 8-bit level of whole-image inference) was measured
    with the published checkpoint; random-init weights do not keep it. Measured on this photo
    with 32-px cores (PyTorch, bench.zoo.seams): published weights 113 / 4 / 2 / 1 levels at
    context 0 / 8 / 16 / 24 px (no pixel more than one level off from 16 on); random init
    255 / 255 / 67 / 5 levels (56% / 34% / 9.7% / 0.3% of pixels more than one level off): an
    untrained residual chain reaches further than the trained one. So this asserts what holds
    for any weights: the served tiles equal PyTorch's tiles by the same rule, and the rule's
    context brings them closer to the whole image than no context."""
    rgb = _photo(96, 120)
    rule = get_variant("srnext").tiling
    whole, _ = _upscale(client, rgb, model="srnext")
    tiled, headers = _upscale(client, rgb, model="srnext", tile=32)
    assert int(headers["x-tiles"]) == len(plan_tiles(*rule.padded(96, 120), 32, rule.context,
                                                       rule.align)) == 9
    model, _ = load_model("srnext", triton_server.weights["srnext"])
    picture = codec.Picture(color=rgb, alpha=None, gray=False, source_format="PNG")
    local = upscale_picture(model, picture, torch.device("cpu"), tile=32, rule=rule).picture.color
    # random init is that sensitive to the context: a context off by a few px is tens of levels off
    assert np.abs(tiled.astype(int) - local.astype(int)).max() <= 1
    with TestClient(create_app(Settings(triton_url=triton_server.grpc_url, tile_context=0))) as bare:
        seamed, headers = _upscale(bare, rgb, model="srnext", tile=32)
    assert int(headers["x-tiles"]) == len(plan_tiles(*rule.padded(96, 120), 32, 0, 1)) == 16

    def off(a: np.ndarray) -> float:  # share of pixels with a channel more than one level off
        return float((np.abs(a.astype(int) - whole.astype(int)).max(axis=2) > 1).mean())

    assert off(tiled) < off(seamed) / 2, (off(tiled), off(seamed))


def test_export_repo_takes_srnext_weights_and_publishes_its_rule(tmp_path: Path) -> None:
    """`imdsr export repo --weights srnext=PATH` (done with the imported published checkpoint
    too; here random-init weights the test writes): the model Triton would load, its rule in
    config.pbtxt, and its graph on both CPU runtimes equal to PyTorch within one level."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc
    from typer.testing import CliRunner

    from imdsr.cli import app
    from imdsr.contract import ALIGN_PARAM, CONTEXT_PARAM, OUTPUT_U8_NAME
    from training.weights.store import WeightsMeta, save_weights
    from triton_host.python_backend.runtimes import RUNTIMES, make_runner

    torch.manual_seed(1)
    model = create_model("srnext").eval()
    weights = save_weights(tmp_path / "srnext.safetensors", model.state_dict(),
                           WeightsMeta("srnext", 4, "random-init"))
    out = tmp_path / "repo"
    res = CliRunner().invoke(app, ["export", "repo", "--target", "cpu", "--variants", "srnext",
                                   "--weights", f"srnext={weights}", "-o", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "MANIFEST.json").read_text())["models"]
    assert list(manifest) == ["srnext"] and manifest["srnext"]["weights_source"] == "random-init"
    config = text_format.Parse((out / "srnext" / "config.pbtxt").read_text(), mc.ModelConfig())
    rule = get_variant("srnext").tiling
    assert config.parameters[CONTEXT_PARAM].string_value == str(rule.context) == "16"
    assert config.parameters[ALIGN_PARAM].string_value == str(rule.align) == "1"
    rgb = _photo(40, 56)
    x = np.ascontiguousarray(rgb.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
    with torch.inference_mode():
        ref = torch.round(model(torch.from_numpy(x)).clamp(0, 1) * 255).numpy().astype(int)
    for runtime in RUNTIMES:
        got = make_runner(runtime, str(out / "srnext" / "1" / "model.onnx"), 1).run(x, [OUTPUT_U8_NAME])[0]
        assert np.abs(got.astype(int) - ref).max() <= 1, runtime
