"""OpenVINO's per-shape compilations (runtimes.py StaticShapes, OpenVinoRunner): which shapes get
one, that memory stays bounded under random shapes, and that every path computes the same."""

from __future__ import annotations

import numpy as np
import pytest

from export.onnx_export import export_onnx
from imdsr.contract import OUTPUT_NAME, OUTPUT_U8_NAME
from triton_host.python_backend.runtimes import OpenVinoRunner, StaticShapes, make_runner

A, B, C, D = ((1, 3, 64, 64), (1, 3, 64, 128), (1, 3, 128, 128), (1, 3, 128, 192))


def test_a_shape_is_compiled_on_its_second_sighting_while_there_is_room() -> None:
    s = StaticShapes(capacity=2)
    assert s.decide(A) == (False, None)  # once: could be a one-off
    assert s.decide(A) == (True, None)
    assert s.decide(A) == (False, None)  # kept: already compiled
    assert s.decide(B) == (False, None) and s.decide(B) == (True, None)
    assert set(s.kept) == {A, B}


def test_a_full_set_changes_only_for_a_shape_seen_twice_as_often() -> None:
    s = StaticShapes(capacity=2)
    for shape in (A, A, B, B):
        s.decide(shape)
    assert [s.decide(C) for _ in range(3)] == [(False, None)] * 3  # 3 < 2 x 2
    assert s.decide(C) == (True, A)  # 4 >= 2 x 2: the least seen kept shape (A and B tie: the older, A) goes
    assert set(s.kept) == {B, C}


def test_random_shapes_do_not_recompile_all_the_time() -> None:
    """25 bucketed shapes at random, 4 kept: a handful of compilations, not one per request."""
    rng = np.random.default_rng(0)
    shapes = [(1, 3, h, w) for h in range(64, 321, 64) for w in range(64, 321, 64)]
    s = StaticShapes(capacity=4)
    compiled = sum(s.decide(shapes[i])[0] for i in rng.integers(0, len(shapes), 5000))
    assert len(s.kept) == 4 and compiled < 40


def test_traffic_that_moves_moves_the_kept_set() -> None:
    s = StaticShapes(capacity=1, decay_every=16)
    for _ in range(200):
        s.decide(A)
    assert set(s.kept) == {A}
    for _ in range(200):  # counts halve every 16 sightings: A's lead fades
        s.decide(B)
    assert set(s.kept) == {B}


def test_counts_are_kept_for_a_bounded_number_of_shapes() -> None:
    s = StaticShapes(capacity=2, remembered=8)
    for side in range(8, 8 + 500):  # a client sending every window size there is
        s.decide((1, 3, side, side))
    assert len(s.hits) <= 8


def test_no_capacity_compiles_nothing() -> None:
    s = StaticShapes(capacity=0)
    assert [s.decide(A) for _ in range(5)] == [(False, None)] * 5


@pytest.fixture(scope="module")
def c4nla_onnx(variant_weights, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    return str(export_onnx("c4nla", variant_weights["c4nla"], tmp_path_factory.mktemp("st") / "m.onnx").path)


def test_static_compilations_compute_what_the_dynamic_graph_does(c4nla_onnx: str) -> None:
    rng = np.random.default_rng(0)
    dynamic = make_runner("openvino", c4nla_onnx, 2, precision="f32")
    # compiled at once (not in the background) so that each step's kept set is known
    runner = OpenVinoRunner(c4nla_onnx, 2, False, "f32", static_shapes=1, background=False)
    x, y = rng.random((1, 3, 40, 56), dtype=np.float32), rng.random((1, 3, 48, 32), dtype=np.float32)
    want_x, want_y = (dynamic.run(v, [OUTPUT_NAME, OUTPUT_U8_NAME]) for v in (x, y))
    for step, (v, want, kept) in enumerate([(x, want_x, []), (x, want_x, [x.shape]),
                                            (y, want_y, [x.shape]), (y, want_y, [x.shape]),
                                            (y, want_y, [x.shape]), (y, want_y, [y.shape])]):
        got = runner.run(v, [OUTPUT_NAME, OUTPUT_U8_NAME])
        assert runner.static_shapes_kept() == kept, step  # y replaces x once seen twice as often
        assert np.abs(got[0] - want[0]).max() < 1e-4
        assert np.abs(got[1].astype(int) - want[1]).max() <= 1


@pytest.mark.parametrize("static_shapes", [0, 2])
def test_requests_side_by_side_compute_what_they_do_alone(c4nla_onnx: str, static_shapes: int) -> None:
    rng = np.random.default_rng(1)
    alone = make_runner("openvino", c4nla_onnx, 2, precision="f32")
    runner = make_runner("openvino", c4nla_onnx, 2, precision="f32", side_by_side=2,
                         static_shapes=static_shapes)
    # five requests of two shapes: rounds of two per shape, a last one of each shape alone
    xs = [rng.random(shape, dtype=np.float32) for shape in
          [(1, 3, 40, 56)] * 3 + [(1, 3, 32, 32)] * 2]
    for _ in range(3):  # the third round runs on static compilations where they are allowed
        outs = runner.run_many(xs, [[OUTPUT_U8_NAME], [OUTPUT_NAME], [OUTPUT_U8_NAME],
                                    [OUTPUT_U8_NAME], [OUTPUT_NAME, OUTPUT_U8_NAME]])
        assert [len(o) for o in outs] == [1, 1, 1, 1, 2]
        for x, out, names in zip(xs, outs, [[OUTPUT_U8_NAME], [OUTPUT_NAME], [OUTPUT_U8_NAME],
                                            [OUTPUT_U8_NAME], [OUTPUT_NAME, OUTPUT_U8_NAME]],
                                 strict=True):
            for got, want in zip(out, alone.run(x, names), strict=True):
                assert got.shape == want.shape and got.dtype == want.dtype
                assert np.abs(got.astype(float) - want).max() <= (1 if got.dtype == np.uint8 else 1e-4)
        runner.wait_compiled()  # compiled in the background meanwhile: the next round uses them
    assert len(runner.static_shapes_kept()) == (2 if static_shapes else 0)


def test_a_failed_compilation_serves_on_and_frees_its_place(c4nla_onnx: str) -> None:
    rng = np.random.default_rng(2)
    runner = OpenVinoRunner(c4nla_onnx, 1, False, "f32", static_shapes=1, background=False)
    real = runner._compile
    x, y = rng.random((1, 3, 40, 56), dtype=np.float32), rng.random((1, 3, 48, 32), dtype=np.float32)

    def broken(model):  # noqa: ANN001, ANN202 - what a compiler error looks like to the runner
        raise RuntimeError("no memory for this shape")

    runner._compile = broken
    want = make_runner("openvino", c4nla_onnx, 1, precision="f32").run(x, [OUTPUT_U8_NAME])[0]
    for _ in range(2):  # the second sighting compiles, which fails: still answered, dynamically
        assert np.abs(runner.run(x, [OUTPUT_U8_NAME])[0].astype(int) - want).max() <= 1
    assert runner.static_shapes_kept() == []
    runner._compile = real
    for _ in range(2):  # x no longer holds the one place: y gets it on its second sighting
        runner.run(y, [OUTPUT_U8_NAME])
    assert runner.static_shapes_kept() == [y.shape]


@pytest.mark.parametrize(("runtime", "side_by_side"), [("onnxruntime", 1), ("openvino", 1), ("openvino", 2)])
def test_a_bad_input_among_several_fails_alone(c4nla_onnx: str, runtime: str, side_by_side: int) -> None:
    """What Triton hands over at once: each input gets its outputs or its own error; two bad ones
    of one shape (a round side by side that fails) each get theirs too."""
    rng = np.random.default_rng(3)
    runner = make_runner(runtime, c4nla_onnx, 2, precision="f32", side_by_side=side_by_side)
    good = rng.random((1, 3, 32, 40), dtype=np.float32)
    bad = rng.random((1, 2, 32, 40), dtype=np.float32)  # two channels: the graph takes three
    outcomes = runner.run_many([good, bad, good, bad], [[OUTPUT_U8_NAME]] * 4)
    want = runner.run(good, [OUTPUT_U8_NAME])[0]
    assert isinstance(outcomes[1], Exception) and isinstance(outcomes[3], Exception)
    for outcome in (outcomes[0], outcomes[2]):
        assert not isinstance(outcome, Exception) and np.array_equal(outcome[0], want)
