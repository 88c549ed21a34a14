"""Quantization quality on the LLaMA architecture (tests/models.py's small config), first
fitted for 300 steps to a synthetic next-token task (arithmetic progressions modulo the
vocabulary, step inferred from context) so its weights carry signal: GPTQ's logits error
against the float model is below round-to-nearest's, per layer and end to end."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lmc import compile as lmc_compile  # noqa: E402
from lmc.frontend import import_model  # noqa: E402
from lmc.ir import run  # noqa: E402
from lmc.passes.calibration import make_calibration  # noqa: E402

from tests.backends.c.hostbuild import needs_cc  # noqa: E402
from tests.models import LLAMA, LlamaPrefill, llama_model  # noqa: E402

pytestmark = pytest.mark.slow
SEQ = 24


def progressions(n: int, gen: torch.Generator) -> torch.Tensor:
    """Token sequences start + k * step (mod vocab), step 1..16 per sequence."""
    v = LLAMA["vocab_size"]
    start = torch.randint(0, v, (n, 1), generator=gen)
    step = torch.randint(1, 17, (n, 1), generator=gen)
    return (start + step * torch.arange(SEQ)) % v


@pytest.fixture(scope="module")
def fitted():
    """(float graph, calibration batches, held-out batch, trained module's logits)."""
    torch.manual_seed(0)
    lm = llama_model().train()
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        ids = progressions(32, gen)
        loss = lm(input_ids=ids, labels=ids, use_cache=False).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1.5, "the fit did not learn the task"
    model = LlamaPrefill(lm.eval())
    example = progressions(2, gen)
    g, _ = import_model(
        model, (example,), dynamic_shapes={"input_ids": {0: ("batch", 1, 8), 1: ("seq", 1, 64)}}
    )
    calib = [[progressions(8, gen).numpy()] for _ in range(6)]
    held_out = progressions(8, gen)
    with torch.no_grad():
        want = model(held_out).numpy()
    return g, calib, held_out.numpy(), want


def test_float_import_matches_the_trained_model(fitted):
    g, _, ids, want = fitted
    (got,) = run(g, [ids])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gptq_logits_error_is_below_rtn(fitted):
    g, calib, ids, want = fitted
    cal = make_calibration(g, calib)
    errs, stats = {}, {}
    for method in ("rtn", "gptq"):
        m = lmc_compile(g, quantize=f"w4-{method}-g32", calibration=cal)
        assert sum(n.op.name == "linear_w4" for n in m.graph.nodes) == 15  # 7 per layer + head
        (got,) = run(m.graph, [ids])
        errs[method] = float(np.linalg.norm(got - want) / np.linalg.norm(want))
        agree = float(np.mean(got.argmax(-1) == want.argmax(-1)))
        print(f"w4-{method}-g32: logits rel err {errs[method]:.4f}, top-1 agreement {agree:.3f}")
        stats[method] = m.quant_stats
    assert errs["gptq"] < errs["rtn"]
    for name, q in stats["gptq"].items():
        assert q["output_rel_err"] < stats["rtn"][name]["output_rel_err"], name


@needs_cc
@pytest.mark.parametrize("spec", ["w4-gptq-g128", "w8a8"])
def test_quantized_llama_on_host_matches_the_quantized_graph(fitted, spec):
    """The fitted LLaMA quantized and built for the host C target against the same quantized
    graph on the reference interpreter. W4: float rounding only. W8A8: the host's f32 norms and
    softmax may move an activation across a rounding tie of its int8 code, so the logits are
    compared by relative error and top-1 agreement rather than elementwise."""
    g, calib, ids, want = fitted
    m = lmc_compile(g, target="host", quantize=spec, calibration=make_calibration(g, calib))
    kind = "linear_w4" if spec.startswith("w4") else "linear_w8a8"
    assert sum(n.op.name == kind for n in m.graph.nodes) == 15
    got = m(ids)
    (ref,) = run(m.graph, [ids])
    rel = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    if kind == "linear_w4":
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
    else:
        assert rel < 0.02, rel
        assert float(np.mean(got.argmax(-1) == ref.argmax(-1))) > 0.95
    float_err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    print(f"{spec} on host: rel err vs quantized reference {rel:.2e}, vs float {float_err:.4f}")
