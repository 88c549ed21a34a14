"""`lmc import` and `lmc ir` on model files: capture report, dynamic dims, one-line errors."""

from __future__ import annotations

import pytest
from lmc.cli import main, parse_dynamic
from lmc.ir import LmcError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _model(path, op_types=("Relu",)):
    nodes, prev = [], "x"
    for i, op in enumerate(op_types):
        nodes.append(helper.make_node(op, [prev], [f"t{i}"], name=f"node_{op}_{i}"))
        prev = f"t{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_import_prints_report_with_symbols(tmp_path, capsys):
    path = _model(tmp_path / "m.onnx", ("Relu", "Sigmoid", "Relu"))
    assert main(["import", str(path), "--dynamic", "x:0=batch:1:16", "--ir"]) == 0
    out = capsys.readouterr().out
    assert "batch in 1..16" in out
    assert "relu" in out and "sigmoid" in out
    assert "%x = input() {index=0} : f32[batch, 4]" in out


def test_import_lists_every_unsupported_op_at_once(tmp_path, capsys):
    # NonZero (data-dependent output shape) twice and Unique once: all reported in one error
    nodes = [
        helper.make_node("NonZero", ["x"], ["nz1"], name="first_nonzero"),
        helper.make_node("Unique", ["x"], ["u"], name="the_unique"),
        helper.make_node("NonZero", ["x"], ["nz2"], name="second_nonzero"),
    ]
    outs = [helper.make_tensor_value_info(n, TensorProto.INT64, None) for n in ("nz1", "nz2")]
    outs.append(helper.make_tensor_value_info("u", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])], outs
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lmc: error:")
    assert "NonZero" in err and "Unique" in err
    assert "first_nonzero" in err and "second_nonzero" in err and "the_unique" in err


def test_import_corrupt_file_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(_model(tmp_path / "m.onnx").read_bytes()[:20])
    assert main(["import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.onnx" in err


def test_ir_accepts_model_files(tmp_path, capsys):
    path = _model(tmp_path / "m.onnx", ("Relu", "Relu"))
    assert main(["ir", str(path), "--passes", "default"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph @g [batch in 1..")
    assert out.count("relu(") == 2


def test_import_output_not_overwritten(tmp_path, capsys):
    path = _model(tmp_path / "m.onnx")
    out = tmp_path / "m.lmc"
    out.write_text("mine")
    assert main(["import", str(path), "-o", str(out)]) == 1
    assert out.read_text() == "mine"
    assert main(["import", str(path), "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("graph @g")


def test_parse_dynamic():
    assert parse_dynamic(["x:0=b:1:8", "x:1=s:2:9", "ids:1=seq:1:512"]) == {
        "x": {0: ("b", 1, 8), 1: ("s", 2, 9)},
        "ids": {1: ("seq", 1, 512)},
    }
    assert parse_dynamic([]) is None
    with pytest.raises(LmcError, match="INPUT:AXIS=NAME:LO:HI"):
        parse_dynamic(["x=b"])
