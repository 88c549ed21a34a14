"""lmc's main job on an example model: import a PyTorch model, compile it, run it, check it.

    python examples/quickstart.py [--target host|reference]

The model is a small transformer encoder block (random weights, dynamic batch and sequence).
The compiled model runs at two input shapes and is compared with PyTorch's own output.
"""

from __future__ import annotations

import argparse
import sys
import time

import lmc
import numpy as np
import torch


class EncoderBlock(torch.nn.Module):
    """Pre-norm attention + MLP block: the shape of every BERT/ViT layer."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).unbind(2)
        a = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.norm2(x))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="host")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = EncoderBlock().eval()
    example = (torch.randn(2, 16, 64),)
    batch, seq = torch.export.Dim("batch", max=8), torch.export.Dim("seq", max=256)
    t0 = time.perf_counter()
    compiled = lmc.compile(model, example, target=args.target, dynamic_shapes=({0: batch, 1: seq},))
    print(f"compiled for {args.target} in {time.perf_counter() - t0:.2f} s; final IR:\n")
    print(compiled.ir)
    worst = 0.0
    for shape in ((1, 7, 64), (3, 40, 64)):
        x = torch.randn(*shape)
        with torch.no_grad():
            want = model(x).numpy()
        got = compiled(x.numpy())
        err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
        worst = max(worst, err)
        print(f"input {list(shape)}: max |lmc - torch| / max |torch| = {err:.2e}")
    ok = worst <= 1e-4
    print("check against PyTorch:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
