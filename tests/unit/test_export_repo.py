"""Serving config, rendered config.pbtxt (parsed with Triton's own schema), repository generator."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from pydantic import ValidationError
from tritonclient.grpc import model_config_pb2 as mc

from export.model_config import render_model_config
from export.repo import MANIFEST, ModelSource, check_repository, write_repository
from export.serving import ServingConfig, load_serving
from imdsr.contract import (
    ALIGN_PARAM,
    ARCH_PARAM,
    BUCKET_PARAM,
    CONTEXT_PARAM,
    DESCRIPTION_NAME,
    INPUT_NAME,
    MAX_WINDOW_PARAM,
    MIN_WINDOW_PARAM,
    OUTPUT_NAME,
    OUTPUT_U8_NAME,
    WHOLE_PARAM,
    variant_of,
)
from tests.support import ROOT
from training.models import get_variant, list_variants
from triton_host.python_backend import BACKEND_FILES


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


@pytest.fixture(scope="module")
def cfg() -> ServingConfig:
    return load_serving()


# --- serving.toml -------------------------------------------------------------------------------


def test_shipped_serving_toml_loads_with_gateway_window(cfg: ServingConfig) -> None:
    assert cfg.window % 32 == 0 and cfg.max_batch >= 1
    assert cfg.gpu.instance_count("c16nla") >= 1 and cfg.cpu.instance_count("nope") >= 1


def test_serving_rejects_unknown_keys_and_impossible_batches(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text("window = 192\n[batching]\nmax_queue_delay = 5\n")
    with pytest.raises(ValidationError, match="max_queue_delay"):
        load_serving(bad)
    with pytest.raises(ValidationError, match="outside 1..max_batch"):
        ServingConfig.model_validate({"max_batch": 4, "gpu": {"warmup_batch_sizes": [8]}})
    with pytest.raises(ValidationError, match="tile"):  # the old name of `window` is an error, not ignored
        ServingConfig.model_validate({"tile": 320})
    with pytest.raises(ValidationError, match="tensorrt_version"):  # a minor cannot tell builds apart
        ServingConfig.model_validate({"gpu": {"tensorrt_version": "10.5"}})


def test_side_by_side_needs_whole_threads_per_stream() -> None:
    with pytest.raises(ValidationError, match="side_by_side = 2 needs intra_op_threads a multiple"):
        ServingConfig.model_validate({"cpu": {"intra_op_threads": 3, "side_by_side": 2}})
    with pytest.raises(ValidationError, match="static_shapes"):
        ServingConfig.model_validate({"cpu": {"static_shapes": -1}})
    ok = ServingConfig.model_validate({"cpu": {"intra_op_threads": 4, "side_by_side": 2}})
    assert ok.cpu.side_by_side == 2


# --- config.pbtxt -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list_variants())
@pytest.mark.parametrize("target", ["cpu", "gpu", "jetson"])
def test_every_config_parses_with_tritons_schema(cfg: ServingConfig, variant: str, target: str) -> None:
    m = parse(render_model_config(variant, target, cfg))  # type: ignore[arg-type]
    # the same name on every target: clients never change; IMDeception keeps its historic names
    assert m.name == (f"imdeception_{variant}" if get_variant(variant).arch == "imdeception" else variant)
    assert m.max_batch_size == cfg.max_batch_for(target)  # type: ignore[arg-type]
    io = [(t.name, t.data_type, list(t.dims)) for t in [*m.input, *m.output]]
    # the Python-backend models (cpu) also say what they run; TensorRT plans cannot
    described = [(DESCRIPTION_NAME, mc.TYPE_UINT8, [-1])] if target == "cpu" else []
    assert io == [(INPUT_NAME, mc.TYPE_FP32, [3, -1, -1]), (OUTPUT_NAME, mc.TYPE_FP32, [3, -1, -1]),
                  (OUTPUT_U8_NAME, mc.TYPE_UINT8, [3, -1, -1]), *described]
    b = m.dynamic_batching
    # describe requests jump the queue of tiles (priority 1 of 2)
    assert (b.priority_levels, b.default_priority_level) == ((2, 2) if described else (0, 0))
    assert list(b.preferred_batch_size) == cfg.preferred_batch_sizes_for(target)  # type: ignore[arg-type]
    assert b.max_queue_delay_microseconds == cfg.batching.max_queue_delay_us
    assert b.default_queue_policy.max_queue_size == cfg.batching.max_queue_size
    assert b.default_queue_policy.default_timeout_microseconds == cfg.batching.queue_timeout_us
    assert b.default_queue_policy.timeout_action == mc.ModelQueuePolicy.REJECT
    t = cfg.target(target)  # type: ignore[arg-type]
    assert m.instance_group[0].count == t.instance_count(variant)
    assert [w.batch_size for w in m.model_warmup] == t.warmup_batch_sizes
    for w in m.model_warmup:
        assert list(w.inputs[INPUT_NAME].dims) == [3, cfg.window, cfg.window]
    # every target publishes the window limit its engine or session was made for: the window, or
    # on cpu (runtimes that take any shape) the size a model runs whole up to, if larger
    rule = get_variant(variant).tiling
    window = cfg.window if target != "cpu" else max(cfg.window, rule.whole_up_to)
    assert m.parameters[MAX_WINDOW_PARAM].string_value == str(window)
    published = {k: m.parameters[k].string_value for k in (ARCH_PARAM, CONTEXT_PARAM, ALIGN_PARAM,
                                                             MIN_WINDOW_PARAM, WHOLE_PARAM,
                                                             BUCKET_PARAM)}
    assert published == {ARCH_PARAM: get_variant(variant).arch, CONTEXT_PARAM: str(rule.context),
                         ALIGN_PARAM: str(rule.align), MIN_WINDOW_PARAM: str(rule.min_side),
                         WHOLE_PARAM: str(min(rule.whole_up_to, window)),
                         BUCKET_PARAM: str(rule.bucket)}


def test_cpu_config_runs_python_backend_on_cpu(cfg: ServingConfig) -> None:
    m = parse(render_model_config("c4", "cpu", cfg))
    assert m.backend == "python" and not m.platform
    assert m.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert m.parameters["onnx_file"].string_value == "model.onnx"
    assert m.parameters["intra_op_threads"].string_value == str(cfg.cpu.intra_op_threads)
    assert m.parameters["runtime"].string_value == cfg.cpu.runtime
    assert list(m.dynamic_batching.preferred_batch_size) == [1]  # CPU: requests go alone (measured)


def test_gpu_config_maps_compute_capabilities_to_plans(cfg: ServingConfig) -> None:
    m = parse(render_model_config("c16nla", "gpu", cfg))
    assert m.platform == "tensorrt_plan"
    assert m.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert m.instance_group[0].count == cfg.gpu.instance_count("c16nla")
    ver = cfg.gpu.tensorrt_version
    assert dict(m.cc_model_filenames) == {
        cc: f"model.sm{cc.replace('.', '')}.trt{ver}.plan" for cc in cfg.gpu.compute_capabilities}
    assert not m.optimization.cuda.graphs  # off by default
    jetson = parse(render_model_config("c4", "jetson", cfg))
    assert list(jetson.cc_model_filenames) == ["8.7"]  # Orin only: JetPack 6 does not run on Xavier


def test_cuda_graphs_are_captured_at_the_window_shape(cfg: ServingConfig) -> None:
    on = cfg.model_copy(update={"gpu": cfg.gpu.model_copy(update={"cuda_graphs": True,
                                                                   "cuda_graph_batch_sizes": []})})
    m = parse(render_model_config("c4", "gpu", on))
    assert m.optimization.cuda.graphs
    specs = m.optimization.cuda.graph_spec
    assert [s.batch_size for s in specs] == list(range(1, cfg.max_batch + 1))
    assert all(list(s.input[INPUT_NAME].dim) == [3, cfg.window, cfg.window] for s in specs)


def test_wire_dtypes_are_for_the_cpu_benchmark_only(cfg: ServingConfig) -> None:
    m = parse(render_model_config("c4", "cpu", cfg, wire_dtype="UINT8", name="x"))
    assert m.input[0].data_type == mc.TYPE_UINT8 and m.output[0].data_type == mc.TYPE_UINT8
    assert [o.name for o in m.output] == [OUTPUT_NAME]
    with pytest.raises(ValueError, match="FP32"):
        render_model_config("c4", "gpu", cfg, wire_dtype="FP16")


# --- the generator ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_repo(tmp_path_factory: pytest.TempPathFactory, variant_weights,
             cfg) -> tuple[Path, list[ModelSource]]:
    out = tmp_path_factory.mktemp("gen") / "repo"
    sources = [ModelSource(v, variant_weights[v]) for v in ("c4", "c4nla")]
    write_repository(out, "cpu", sources, cfg)
    return out, sources


def test_cpu_repository_layout(cpu_repo, cfg) -> None:
    out, sources = cpu_repo
    for s in sources:
        model = out / f"imdeception_{s.variant}"
        assert (model / "1" / "model.onnx").stat().st_size > 10_000
        for source in BACKEND_FILES:
            assert (model / "1" / source.name).read_bytes() == source.read_bytes()
        assert parse((model / "config.pbtxt").read_text()).name == model.name
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["target"] == "cpu"
    assert set(manifest["models"]) == {"imdeception_c4", "imdeception_c4nla"}


def test_generated_files_hardcode_no_local_path(cpu_repo) -> None:
    # A committed repository must work from a fresh clone: the stub learns where the packages are
    # from the launcher's environment, never from a path written here.
    out, _ = cpu_repo
    local = [sys.prefix, str(ROOT)]
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in (".py", ".pbtxt"):
            assert not any(p in f.read_text() for p in local), f


def test_fresh_repository_checks_clean_and_regenerates_identically(cpu_repo, cfg, tmp_path: Path) -> None:
    out, sources = cpu_repo
    assert check_repository(out, cfg, sources) == []
    again = tmp_path / "again"
    write_repository(again, "cpu", sources, cfg)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((out / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_staleness_is_detected(cpu_repo, cfg, variant_weights, tmp_path: Path) -> None:
    out, sources = cpu_repo
    stale = tmp_path / "stale"
    shutil.copytree(out, stale)
    config = stale / "imdeception_c4" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 8", "max_batch_size: 4"))
    problems = check_repository(stale, cfg, sources)
    assert any("config.pbtxt" in p for p in problems)
    # Other weights for c4 than the ones it was exported from.
    other = [ModelSource("c4", variant_weights["c4nla"]), sources[1]]
    assert any("other weights" in p for p in check_repository(out, cfg, other))
    # A variant that has weights but no model, and the generator's config changed.
    more = [*sources, ModelSource("c8", variant_weights["c8"])]
    assert any("imdeception_c8" in p for p in check_repository(out, cfg, more))
    changed = cfg.model_copy(update={"window": 256})
    assert len(check_repository(out, changed, sources)) == 2


def test_generator_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path, variant_weights, cfg) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_repository(precious, "cpu", [ModelSource("c4", variant_weights["c4"])], cfg)
    assert (precious / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]  # no temp folder left behind


def test_gpu_repository_records_built_plans(tmp_path: Path, variant_weights, cfg) -> None:
    plans = tmp_path / "plans" / "imdeception_c4" / "1"
    plans.mkdir(parents=True)
    (plans / "model.sm89.trt10.5.0.18.plan").write_bytes(b"engine")  # e.g. built on an L4 node
    out = tmp_path / "repo"
    write_repository(out, "gpu", [ModelSource("c4", variant_weights["c4"])], cfg, tmp_path / "plans")
    m = parse((out / "imdeception_c4" / "config.pbtxt").read_text())
    assert m.cc_model_filenames["8.9"] == "model.sm89.trt10.5.0.18.plan"
    assert m.cc_model_filenames["8.0"] == f"model.sm80.trt{cfg.gpu.tensorrt_version}.plan"
    assert (out / "imdeception_c4" / "1" / "model.sm89.trt10.5.0.18.plan").read_bytes() == b"engine"
    assert (out / "imdeception_c4" / "1" / "model.onnx").exists()  # source for on-node builds
    assert not (out / "imdeception_c4" / "1" / "model.py").exists()


def test_cli_writes_a_repository(tmp_path: Path, variant_weights) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    out = tmp_path / "repo"
    res = CliRunner().invoke(app, ["export", "repo", "--target", "cpu", "--variants", "c4",
                                   "--weights", f"c4={variant_weights['c4']}", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "imdeception_c4" / "config.pbtxt").exists()
    res = CliRunner().invoke(app, ["export", "repo", "--target", "tpu", "-o", str(out)])
    assert res.exit_code != 0


@pytest.mark.parametrize(("runtime", "backend", "threads_key"), [
    ("openvino", "openvino", "INFERENCE_NUM_THREADS"),
    ("onnxruntime", "onnxruntime", "intra_op_thread_count")])
def test_native_backend_configs_for_nvidias_images(cfg: ServingConfig, runtime: str, backend: str,
                                                   threads_key: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    out = tmp_path / "native"
    res = CliRunner().invoke(app, ["export", "native-repo", str(ROOT / "model_repository"), "-o", str(out),
                                   "--runtime", runtime])
    assert res.exit_code == 0, res.output
    committed = json.loads((ROOT / "model_repository" / MANIFEST).read_text())["models"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(committed)
    for name in committed:
        m = parse((out / name / "config.pbtxt").read_text())
        assert m.backend == backend and m.default_model_filename == "model.onnx"
        assert [o.name for o in m.output] == [OUTPUT_NAME, OUTPUT_U8_NAME]  # the same contract
        assert m.parameters[threads_key].string_value == str(cfg.cpu.intra_op_threads)
        whole = get_variant(variant_of(name)).tiling.whole_up_to  # RLFN runs whole up to 1024
        assert m.parameters[MAX_WINDOW_PARAM].string_value == str(max(cfg.window, whole))
        assert m.max_batch_size == cfg.max_batch_for("cpu")
        assert sorted(p.name for p in (out / name / "1").iterdir()) == ["model.onnx"]  # no model.py
        assert (out / name / "1" / "model.onnx").read_bytes() == \
            (ROOT / "model_repository" / name / "1" / "model.onnx").read_bytes()
    bad = CliRunner().invoke(app, ["export", "native-repo", str(tmp_path), "-o", str(out)])
    assert bad.exit_code == 2 and "not a generated repository" in bad.output


def test_cpu_precision_reaches_the_backend_and_native_repos_refuse_bf16(cfg: ServingConfig) -> None:
    from export.model_config import model_config

    params = {p["key"]: p["value"]["string_value"] for p in model_config("c4", "cpu", cfg)["parameters"]}
    assert params["precision"] == "auto"  # the default: resolved by the model where it loads
    # OpenVINO's streams and per-shape compilations, as serving.toml says (runtimes.py reads them)
    assert (params["side_by_side"], params["static_shapes"]) == (
        str(cfg.cpu.side_by_side), str(cfg.cpu.static_shapes))
    native = model_config("c4", "cpu", cfg, native=True)  # "auto": the native backend's own choice
    assert "precision" not in {p["key"] for p in native["parameters"]}
    assert DESCRIPTION_NAME not in [o["name"] for o in native["output"]]
    bf16 = cfg.model_copy(update={"cpu": cfg.cpu.model_copy(update={"runtime": "openvino",
                                                                    "precision": "bf16"})})
    params = {p["key"]: p["value"]["string_value"] for p in model_config("c4", "cpu", bf16)["parameters"]}
    assert params["precision"] == "bf16"
    with pytest.raises(ValueError, match="f32 only"):
        model_config("c4", "cpu", bf16, native=True)
