"""Example: a PyTorch MLP as lmc IR, checked against torch with the reference interpreter.

Until lmc's torch frontend lands, `to_lmc` below maps the few module types by hand (it is the
example's own code, not lmc's); the rest is lmc's public API: build the graph, print its text
IR, run the pass pipeline, interpret it at two batch sizes and compare with torch.

    python examples/torch_mlp.py
"""

from __future__ import annotations

import numpy as np
import torch
from lmc.ir import OPS, DType, Graph, TensorType, print_graph, run, sym, verify


def make_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))


def to_lmc(model: torch.nn.Sequential, features: int, max_batch: int = 64) -> Graph:
    """The graph of a Sequential of Linear/ReLU layers with a symbolic batch dim."""
    g = Graph("mlp", {"batch": (1, max_batch)})
    h = g.input("x", TensorType(DType.f32, [sym("batch"), features]))
    for idx, layer in enumerate(model):
        if isinstance(layer, torch.nn.Linear):
            w = g.param(f"{idx}.weight", layer.weight.detach().numpy().copy())
            args = [h, w]
            if layer.bias is not None:
                args.append(g.param(f"{idx}.bias", layer.bias.detach().numpy().copy()))
            h = g.apply(OPS["linear"](), *args)
        elif isinstance(layer, torch.nn.ReLU):
            h = g.apply(OPS["relu"](), h)
        else:
            raise NotImplementedError(f"this example maps Linear and ReLU, not {layer}")
    g.set_outputs([h])
    verify(g, check_weights=True)
    return g


def main() -> None:
    model = make_model().eval()
    g = to_lmc(model, features=16)
    print(print_graph(g), end="")
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        x = rng.standard_normal((batch, 16)).astype(np.float32)
        (got,) = run(g, [x])
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        err = float(np.max(np.abs(got - want)))
        print(f"// batch={batch}: max |lmc - torch| = {err:.3g}")
        if err > 1e-4:
            raise SystemExit(f"mismatch against torch at batch={batch}: {err}")


if __name__ == "__main__":
    main()
