"""The PyTorch importer's behaviour: capture paths (export, ExportedProgram, .pt2, the fx
fallback), dynamic-shape specs and bounds, weight keys, and errors that report everything."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lmc.frontend import import_model  # noqa: E402
from lmc.frontend.common import ModelImportError, UnsupportedOpsError  # noqa: E402
from lmc.frontend.torch_export import DEFAULT_MAX_DIM, import_torch  # noqa: E402
from lmc.ir.interpreter import run  # noqa: E402
from lmc.ir.parser import parse_ir  # noqa: E402
from lmc.ir.printer import print_graph  # noqa: E402

from tests.util import assert_close  # noqa: E402

Dim = torch.export.Dim


class Heads(torch.nn.Module):
    """Linear -> split into heads (SymInt arithmetic in view) -> causal sdpa -> merge."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 16)
        self.register_buffer("offset", torch.linspace(-1, 1, 16))
        self.register_buffer("scratch", torch.ones(16), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x) + self.offset * self.scratch
        b, t, c = y.shape
        y = y.view(b, t, 2, c // 2).transpose(1, 2)
        z = torch.nn.functional.scaled_dot_product_attention(y, y, y, is_causal=True)
        return z.transpose(1, 2).reshape(b, t * c) * torch.tensor(0.5)


def _x(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, 8, generator=torch.Generator().manual_seed(seed))


def _check(g, module: torch.nn.Module, *inputs: torch.Tensor) -> None:
    with torch.no_grad():
        want = module(*inputs).numpy()
    (got,) = run(g, [t.numpy() for t in inputs])
    assert_close(got, want, 1e-5, 1e-5)


LMC_SPEC = {"x": {0: ("batch", 1, 8), 1: ("seq", 2, 64)}}


def test_lmc_dynamic_shapes_name_symbols_and_set_bounds() -> None:
    m = Heads().eval()
    g, report = import_torch(m, (_x(2, 5),), LMC_SPEC)
    assert g.symbols == {"batch": (1, 8), "seq": (2, 64)}
    assert report.path == "torch.export"
    text = print_graph(g)
    # SymInt arithmetic (t * c, c // 2) is evaluated into attribute dims
    assert "shape=[batch, 16*seq]" in text, text
    assert "attention(" in text and "linear(" in text  # kept whole, not decomposed
    for b, t in [(1, 2), (3, 7), (8, 64)]:
        _check(g, m, _x(b, t, seed=b))


def test_torch_dim_spec_and_unbounded_default() -> None:
    m = Heads().eval()
    spec = {"x": {0: Dim("batch", max=32), 1: Dim("seq")}}
    g, _ = import_torch(m, (_x(2, 5),), spec)
    assert g.symbols["batch"][1] == 32
    assert g.symbols["seq"][1] == DEFAULT_MAX_DIM  # torch reports no upper bound
    g2, _ = import_torch(m, (_x(2, 5),), {"x": {1: ("seq",)}}, max_dim=100)
    assert g2.symbols == {"seq": (1, 100)}
    _check(g2, m, _x(2, 100))


def test_exported_program_and_pt2_file(tmp_path) -> None:
    m = Heads().eval()
    ep = torch.export.export(m, (_x(2, 5),), dynamic_shapes={"x": {1: Dim.DYNAMIC}})
    g, report = import_torch(ep, None, {"x": {1: ("seq", 2, 32)}})
    assert g.symbols == {"seq": (2, 32)}
    assert "ExportedProgram" in report.path
    _check(g, m, _x(2, 9))
    path = tmp_path / "heads.pt2"
    torch.export.save(ep, str(path))
    g2, report2 = import_model(path)
    assert report2.path == "torch.export.load"
    assert len(g2.symbols) == 1
    _check(g2, m, _x(2, 11))


def test_weights_are_keyed_by_state_dict_names() -> None:
    m = Heads().eval()
    g, report = import_torch(m, (_x(2, 5),))
    keys = {n.op.key for n in g.nodes if n.op.name == "param"}
    assert {"proj.weight", "proj.bias", "offset", "scratch"} <= keys, keys
    np.testing.assert_array_equal(g.weights["proj.weight"], m.proj.weight.detach().numpy())
    assert report.num_params >= 16 * 8 + 16 * 3
    assert not g.symbols  # no dynamic_shapes: static


def test_printed_ir_parses_back() -> None:
    g, _ = import_torch(Heads().eval(), (_x(2, 5),), LMC_SPEC)
    text = print_graph(g)
    assert print_graph(parse_ir(text)) == text


def test_import_model_dispatches_modules() -> None:
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU())
    g, report = import_model(m, (torch.randn(2, 3),), dynamic_shapes={"input": {0: ("n",)}})
    assert report.source == "Sequential" and "n" in g.symbols
    _check(g, m, torch.randn(5, 3))


class Several(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.cumprod(x, 0) + torch.cumprod(x * 2, 1)
        b = torch.erfinv(x.clamp(-0.5, 0.5))
        return a + b + torch.sort(x, dim=1).values


def test_unsupported_ops_are_reported_together() -> None:
    with pytest.raises(UnsupportedOpsError) as info:
        import_torch(Several(), (torch.randn(3, 4),))
    problems = info.value.problems
    assert problems == {
        "aten.cumprod.default": ["cumprod", "cumprod_1"],
        "aten.erfinv.default": ["erfinv"],
        "aten.sort.default": ["sort"],
    }
    msg = str(info.value)
    assert "4 node(s) of 3 unsupported op kind(s)" in msg
    assert "aten.cumprod.default: 2 node(s): cumprod, cumprod_1" in msg


class Branchy(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent Python control flow
            return x * 2
        return x - 1


def test_data_dependent_control_flow_is_one_clear_error() -> None:
    with pytest.raises(ModelImportError) as info:
        import_torch(Branchy(), (torch.randn(3, 4),))
    assert not isinstance(info.value, UnsupportedOpsError)
    msg = str(info.value)
    assert "torch.export failed" in msg and "symbolic_trace failed too" in msg
    assert "control flow" in msg


class FixedBatch(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(4, -1) * 2  # specializes the batch that the spec declares dynamic


def test_fx_fallback_when_export_rejects_the_module() -> None:
    m = FixedBatch()
    with pytest.warns(UserWarning, match="lmc: torch.export rejected FixedBatch"):
        g, report = import_torch(m, (torch.randn(4, 3),), {"x": {0: ("b", 1, 8)}})
    assert report.path.startswith("torch.fx.symbolic_trace (torch.export failed")
    assert any("symbolic_trace" in n for n in report.notes)
    assert not g.symbols  # the fallback fixes shapes to the example inputs
    _check(g, m, torch.randn(4, 3))


class EvenBatch(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0] // 2, 2 * x.shape[1]) + 1  # valid for even batches only


def test_deferred_shape_guard_outside_the_bounds_is_reported() -> None:
    with pytest.raises(ModelImportError, match="only valid when"):
        import_torch(EvenBatch(), (torch.randn(4, 3),), {"x": {0: ("b", 2, 64)}})


def test_bad_arguments() -> None:
    m = Heads()
    with pytest.raises(ModelImportError, match="example_inputs"):
        import_torch(m, None)
    with pytest.raises(ModelImportError, match="unknown input"):
        import_torch(m, (_x(2, 5),), {"y": {0: ("b", 1, 4)}})
    with pytest.raises(ModelImportError, match="does not accept"):
        import_torch(m, (_x(2, 5), _x(2, 5)))
    with pytest.raises(ModelImportError, match="does not exist"):
        import_model("/nonexistent/model.pt2")


def test_training_mode_is_captured_in_eval_and_restored() -> None:
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))
    m[2].eval()  # mixed modes must come back exactly as they were
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g, report = import_torch(m, (torch.randn(3, 4),))
    assert [x.training for x in m.modules()] == [True, True, True, False]
    assert any("training mode" in n for n in report.notes)
    m.eval()
    _check(g, m, torch.randn(3, 4))


def test_ops_with_converters_are_kept_out_of_the_decomposition_table() -> None:
    from lmc.frontend.torch_export import decomposition_table

    aten = torch.ops.aten
    table = decomposition_table()
    for op in (
        aten.scaled_dot_product_attention.default,
        aten.linear.default,
        aten.layer_norm.default,
        aten.group_norm.default,
        aten.matmul.default,
        aten.rms_norm.default,
        aten.conv2d.default,
        aten.silu.default,
    ):
        assert op not in table, op
    assert aten.hardshrink.default in table  # ops without a converter still decompose
