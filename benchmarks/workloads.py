"""The models `benchmarks/models.py` runs, built from the test zoo (tests/models.py) at
benchmark sizes, and their work per inference (FLOPs, bytes) for the roofline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from tests.models import (
    LlamaDecodeStep,
    LlamaPrefill,
    ResNet18,
    build_minilm,
    minilm_inputs,
    randomize_batchnorm,
)

DynamicShapes = dict[str, dict[int, tuple[str, int, int]]]

# The LLaMA-architecture model of the benchmark (random weights, no GQA).
LLAMA_BENCH = dict(
    vocab_size=32000,
    hidden_size=512,
    intermediate_size=1376,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=8,
    max_position_embeddings=1024,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
PROMPT = 128  # prefill tokens, and the decode step's KV-cache length
LINEAR = 4096


Tensors = tuple[torch.Tensor, ...]


class Built(NamedTuple):
    """A benchmark model: `inputs` are timed; `example` (dynamic dims >= 2, so that
    torch.export does not specialize them to 1) is what the dynamic-shape compilers see."""

    module: nn.Module
    inputs: Tensors
    example: Tensors


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    build: Callable[[], Built]
    dynamic_shapes: DynamicShapes


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def minilm() -> Built:
    zoo = build_minilm()
    return Built(zoo.module, minilm_inputs(batch=1, seq=128), zoo.example_inputs)


def llama_lm() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**LLAMA_BENCH, attn_implementation="sdpa")).eval()


def llama_ids(batch: int, seq: int) -> torch.Tensor:
    return torch.randint(0, LLAMA_BENCH["vocab_size"], (batch, seq), generator=_gen())


def llama_prefill() -> Built:
    return Built(LlamaPrefill(llama_lm()).eval(), (llama_ids(1, PROMPT),), (llama_ids(2, 8),))


def llama_cache(past: int) -> Tensors:
    g = _gen()
    layers, heads = LLAMA_BENCH["num_hidden_layers"], LLAMA_BENCH["num_key_value_heads"]
    d = LLAMA_BENCH["hidden_size"] // LLAMA_BENCH["num_attention_heads"]
    ids = torch.randint(0, LLAMA_BENCH["vocab_size"], (1, 1), generator=g)
    k = torch.randn(layers, 1, heads, past, d, generator=g)
    v = torch.randn(layers, 1, heads, past, d, generator=g)
    return ids, k, v


def llama_decode() -> Built:
    return Built(LlamaDecodeStep(llama_lm()).eval(), llama_cache(PROMPT), llama_cache(6))


def resnet18() -> Built:
    torch.manual_seed(0)
    model = randomize_batchnorm(ResNet18())
    image = torch.randn(2, 3, 224, 224, generator=_gen())
    return Built(model.eval(), (image[:1].clone(),), (image,))


def linear(batch: int) -> Callable[[], Built]:
    def build() -> Built:
        torch.manual_seed(0)
        x = torch.randn(max(batch, 2), LINEAR, generator=_gen())
        return Built(nn.Linear(LINEAR, LINEAR, bias=False).eval(), (x[:batch].clone(),), (x[:2],))

    return build


_BATCH_SEQ = {0: ("batch", 1, 16), 1: ("seq", 2, 128)}  # the zoo's MiniLM dims
_PAST = {3: ("past", 1, 255)}

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "minilm",
            "all-MiniLM-L6-v2 (real weights), batch 1, seq 128",
            minilm,
            {"input_ids": _BATCH_SEQ, "attention_mask": _BATCH_SEQ},
        ),
        Workload(
            "llama_prefill",
            "LLaMA h512 L8 H8 ffn1376 V32000, prefill 128 tokens",
            llama_prefill,
            {"input_ids": {0: ("batch", 1, 4), 1: ("seq", 1, 256)}},
        ),
        Workload(
            "llama_decode",
            "LLaMA h512 L8 H8 ffn1376 V32000, 1 decode step, KV cache 128",
            llama_decode,
            {"input_ids": {}, "past_k": _PAST, "past_v": _PAST},
        ),
        Workload(
            "resnet18",
            "ResNet-18-shaped CNN, 1x3x224x224",
            resnet18,
            {"x": {0: ("batch", 1, 8)}},
        ),
        Workload(
            "linear_b1",
            f"linear {LINEAR}x{LINEAR} (no bias), batch 1 (GEMV)",
            linear(1),
            {"input": {0: ("batch", 1, 256)}},
        ),
        Workload(
            "linear_b128",
            f"linear {LINEAR}x{LINEAR} (no bias), batch 128 (GEMM)",
            linear(128),
            {"input": {0: ("batch", 1, 256)}},
        ),
    )
}


def describe(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """(FLOPs, bytes) per inference. FLOPs: torch's FlopCounterMode with the math SDPA backend
    (so attention's two matmuls are counted; a multiply-add is 2). Bytes: floating-point
    parameters and buffers except embedding tables (only a few rows of those are read), plus
    the inputs and outputs -- a lower bound on memory traffic that ignores activations."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), sdpa_kernel([SDPBackend.MATH]):
        with FlopCounterMode(display=False) as fc:
            out = module(*inputs)
    flops = float(fc.get_total_flops())
    skip = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    tensors = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    weights = sum(
        t.numel() * t.element_size()
        for i, t in tensors.items()
        if i not in skip and t.is_floating_point()
    )
    outs = out if isinstance(out, (tuple, list)) else [out]
    io = sum(t.numel() * t.element_size() for t in [*inputs, *outs] if hasattr(t, "numel"))
    return flops, float(weights + io)


__all__ = ["WORKLOADS", "Built", "Workload", "describe"]
