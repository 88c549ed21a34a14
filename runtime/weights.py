"""The weights file (`weights.safetensors`) and its digest: writer, reader, digest64.

A valid safetensors file: 8-byte little-endian header length N, a JSON header padded with
spaces so that 8 + N is a multiple of 64, then the data region. Every tensor is stored as raw
bytes in the kernels' layout with safetensors dtype "U8" and shape [nbytes rounded up to 64], so
every offset is 64-aligned and the region has no holes. Tensors are stored in sorted key order.
`__metadata__` maps `__lmc_format__` to "1" and each key to a JSON string
`{"dtype": <IR dtype>, "layout": <layout name>, "nbytes": <unpadded bytes>, "shape": [...]}`
(plus any extra fields the writer was given). Same inputs, same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..ir.dtypes import DTYPE_NAMES, DType, round_to_bf16
from .errors import ArtifactError

ALIGN = 64
PLAIN = "plain"  # layout name of a row-major array in the IR dtype's byte form
WEIGHTS_FORMAT_KEY = "__lmc_format__"
WEIGHTS_FORMAT_VERSION = 1

# ---- digest64: must equal lmc_digest64 in runtime/src/lmc_digest.c bit for bit ----------------

_MASK = (1 << 64) - 1
_K0 = 0x9E3779B97F4A7C15
_M1 = np.uint64(0xD6E8FEB86659FD93)
_CHUNK_WORDS = 1 << 18


def _fmix(z: int) -> int:
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & _MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _mixed_sum(words: np.ndarray, first: int) -> int:
    """Sum over words[j] (word index first + j) of mix(w ^ ((i + 1) * K0)), mod 2**64."""
    total = 0
    for start in range(0, len(words), _CHUNK_WORDS):
        w = words[start : start + _CHUNK_WORDS]
        i0 = first + start + 1
        v = np.arange(i0, i0 + len(w), dtype=np.uint64)
        np.multiply(v, np.uint64(_K0), out=v)
        np.bitwise_xor(v, w, out=v)
        t = np.empty_like(v)
        for last in (False, False, True):
            np.right_shift(v, np.uint64(32), out=t)
            np.bitwise_xor(v, t, out=v)
            if not last:
                np.multiply(v, _M1, out=v)
        total += int(v.sum(dtype=np.uint64))
    return total & _MASK


class _Digest:
    """Streaming digest64 over chunks of any length."""

    def __init__(self) -> None:
        self.sum = 0
        self.nbytes = 0
        self.pending = b""  # the bytes of a partial word, < 8

    def update(self, data: bytes | memoryview | np.ndarray) -> None:
        buf = data.reshape(-1).view(np.uint8) if isinstance(data, np.ndarray) else data
        buf = np.frombuffer(buf, dtype=np.uint8)
        if not len(buf):
            return
        if self.pending:
            take = min(8 - len(self.pending), len(buf))
            self.pending += buf[:take].tobytes()
            buf = buf[take:]
            if len(self.pending) < 8:
                return
            self._words(np.frombuffer(self.pending, dtype="<u8"))
            self.pending = b""
        whole = len(buf) // 8 * 8
        self._words(buf[:whole].view("<u8"))
        self.pending = buf[whole:].tobytes()

    def _words(self, words: np.ndarray) -> None:
        self.sum = (self.sum + _mixed_sum(words, self.nbytes // 8)) & _MASK
        self.nbytes += 8 * len(words)

    def digest(self) -> int:
        total, n = self.sum, self.nbytes + len(self.pending)
        if self.pending:
            tail = np.frombuffer(self.pending.ljust(8, b"\0"), dtype="<u8")
            total = (total + _mixed_sum(tail, self.nbytes // 8)) & _MASK
        return _fmix(total ^ n)


def digest64(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """The 64-bit weights digest of `data` (the same function as the C lmc_digest64)."""
    d = _Digest()
    d.update(data)
    return d.digest()


def format_digest(d: int) -> str:
    """The manifest's spelling of a digest64 (JSON-safe: no 64-bit integers)."""
    return f"0x{d:016x}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- weights writer ----------------------------------------------------------------------------


class WrittenWeights(NamedTuple):
    """What `write_weights` returns: digest64 of the data region, sha256 of the whole file and
    key -> (offset in the data region, unpadded nbytes)."""

    digest64: int
    sha256: str
    offsets: dict[str, tuple[int, int]]

    @property
    def data_bytes(self) -> int:
        """Size of the data region (lmc_model_def.weights_bytes)."""
        return max((o + _padded(n) for o, n in self.offsets.values()), default=0)


def _padded(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _as_bytes(data: Any, key: str) -> memoryview:
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data)
        return memoryview(data.reshape(-1).view(np.uint8))
    if isinstance(data, bytes | bytearray | memoryview):
        return memoryview(data).cast("B")
    raise ArtifactError(
        f"weights: {key!r}: expected bytes or a numpy array, got {type(data).__name__}"
    )


def _check_meta(key: str, meta: Mapping[str, Any], nbytes: int) -> dict[str, Any]:
    if not isinstance(key, str) or not key or key.startswith("__"):
        raise ArtifactError(f"weights: bad key {key!r} (non-empty, must not start with '__')")
    m = dict(meta)
    if m.get("dtype") not in DTYPE_NAMES:
        raise ArtifactError(f"weights: {key!r}: meta dtype {m.get('dtype')!r} is not an IR dtype")
    shape = m.get("shape")
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ArtifactError(f"weights: {key!r}: meta shape {shape!r} is not a list of ints >= 0")
    m["shape"] = [int(d) for d in shape]
    if not isinstance(m.get("layout"), str) or not m["layout"]:
        raise ArtifactError(f"weights: {key!r}: meta needs a layout name, got {m.get('layout')!r}")
    if m.setdefault("nbytes", nbytes) != nbytes:
        raise ArtifactError(f"weights: {key!r}: meta nbytes {m['nbytes']} but {nbytes} bytes given")
    return m


def blob(array: np.ndarray, dtype: DType | str, layout: str = PLAIN) -> tuple[np.ndarray, dict]:
    """(bytes, meta) of a plain row-major array stored in IR dtype `dtype` (bf16 is rounded and
    stored as its 16 bits; i4/u4 one value per byte)."""
    dt = DType(dtype) if isinstance(dtype, str) else dtype
    a = np.asarray(array)
    if dt is DType.bf16:
        data = (round_to_bf16(a.astype(np.float32)).view(np.uint32) >> 16).astype("<u2")
    else:
        data = np.ascontiguousarray(a.astype(dt.np.newbyteorder("<"), copy=False))
    return data, {"dtype": dt.value, "shape": list(a.shape), "layout": layout}


def write_weights(
    path: str | os.PathLike[str],
    blobs: Mapping[str, tuple[Any, Mapping[str, Any]]],
    metadata: Mapping[str, str] | None = None,
) -> WrittenWeights:
    """Write `blobs` (key -> (bytes or array, meta with dtype/shape/layout)) as an lmc
    safetensors file; extra file-level `metadata` keys must start with '__'."""
    items = []
    for key in sorted(blobs):
        data, meta = blobs[key]
        mv = _as_bytes(data, key)
        items.append((key, mv, _check_meta(key, meta, mv.nbytes)))
    meta_out: dict[str, str] = {WEIGHTS_FORMAT_KEY: str(WEIGHTS_FORMAT_VERSION)}
    for k, v in (metadata or {}).items():
        if not (isinstance(k, str) and k.startswith("__") and isinstance(v, str)) or k in meta_out:
            raise ArtifactError(
                f"weights: file metadata {k!r}: keys start with '__', values are "
                f"strings, {WEIGHTS_FORMAT_KEY!r} is reserved"
            )
        meta_out[k] = v
    header: dict[str, Any] = {}
    offsets: dict[str, tuple[int, int]] = {}
    pos = 0
    for key, mv, meta in items:
        size = _padded(mv.nbytes)
        header[key] = {"data_offsets": [pos, pos + size], "dtype": "U8", "shape": [size]}
        meta_out[key] = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)
        offsets[key] = (pos, mv.nbytes)
        pos += size
    header["__metadata__"] = meta_out
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    raw = text.encode("ascii")
    raw += b" " * ((-(8 + len(raw))) % ALIGN)
    head = len(raw).to_bytes(8, "little") + raw
    sha, dig = hashlib.sha256(head), _Digest()
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(head)
        for _, mv, _ in items:
            pad = bytes(_padded(mv.nbytes) - mv.nbytes)
            for part in (mv, pad):
                f.write(part)
                sha.update(part)
                dig.update(part)
    os.replace(tmp, path)
    return WrittenWeights(dig.digest(), sha.hexdigest(), offsets)


# ---- weights reader ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightEntry:
    key: str
    offset: int  # in the data region
    nbytes: int  # unpadded
    meta: dict[str, Any]

    @property
    def dtype(self) -> DType:
        return DType(self.meta["dtype"])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.meta["shape"])

    @property
    def layout(self) -> str:
        return self.meta["layout"]


@dataclass
class WeightsFile:
    """An lmc weights file, memory-mapped: `raw(key)` bytes, `array(key)` typed plain arrays,
    `wf[key]` the typed array for plain layouts and the raw bytes otherwise."""

    path: Path
    data: np.ndarray  # the data region, uint8, read-only
    entries: dict[str, WeightEntry]
    metadata: dict[str, str] = field(default_factory=dict)

    def keys(self) -> list[str]:
        return list(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> np.ndarray:
        return self.array(key) if self._entry(key).layout == PLAIN else self.raw(key)

    def _entry(self, key: str) -> WeightEntry:
        try:
            return self.entries[key]
        except KeyError:
            raise KeyError(f"{self.path}: no weight {key!r}") from None

    def raw(self, key: str) -> np.ndarray:
        e = self._entry(key)
        return self.data[e.offset : e.offset + e.nbytes]

    def array(self, key: str) -> np.ndarray:
        """The weight as a numpy array of its IR dtype's storage (layout "plain" only)."""
        e = self._entry(key)
        if e.layout != PLAIN or e.dtype in (DType.i4, DType.u4):
            raise ArtifactError(
                f"{self.path}: weight {key!r} has layout {e.layout!r} dtype "
                f"{e.dtype}: only plain byte-sized weights read as arrays; "
                "use raw()"
            )
        raw = self.raw(key)
        if e.dtype is DType.bf16:
            bits = raw.view("<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(e.shape)
        return raw.view(e.dtype.np.newbyteorder("<")).reshape(e.shape)

    @property
    def digest64(self) -> int:
        return digest64(self.data)


def read_weights(path: str | os.PathLike[str]) -> WeightsFile:
    """Open and check an lmc weights file (layout, alignment, no holes, metadata)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ArtifactError(f"cannot read weights file {p}: {e.strerror}") from None
    if size < 8:
        raise ArtifactError(f"{p}: {size} bytes, too short for a safetensors file")
    mm = np.memmap(p, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    n = int.from_bytes(bytes(mm[:8]), "little")
    if n > size - 8:
        raise ArtifactError(f"{p}: header length {n} exceeds the file ({size} bytes): truncated")
    try:
        header = json.loads(bytes(mm[8 : 8 + n]).decode("utf-8"))
        meta = header.pop("__metadata__", {})
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise ArtifactError(f"{p}: the safetensors header is not a JSON object: {e}") from None
    if not isinstance(meta, dict) or meta.get(WEIGHTS_FORMAT_KEY) != str(WEIGHTS_FORMAT_VERSION):
        raise ArtifactError(
            f"{p}: not an lmc weights file (metadata {WEIGHTS_FORMAT_KEY!r} is "
            f"{meta.get(WEIGHTS_FORMAT_KEY) if isinstance(meta, dict) else None!r},"
            f" expected {str(WEIGHTS_FORMAT_VERSION)!r})"
        )
    if (8 + n) % ALIGN:
        raise ArtifactError(f"{p}: data region starts at byte {8 + n}, not {ALIGN}-aligned")
    data = mm[8 + n :]
    entries, pos = {}, 0
    for key in sorted(header, key=lambda k: _start(header[k])):
        entries[key] = _entry(p, key, header[key], meta, pos)
        pos += header[key]["shape"][0]
    if pos != len(data):
        raise ArtifactError(
            f"{p}: tensors cover {pos} bytes of a {len(data)}-byte data region "
            "(truncated or extra bytes)"
        )
    file_meta = {k: v for k, v in meta.items() if k.startswith("__")}
    return WeightsFile(p, data, entries, file_meta)


def _start(t: Any) -> int:
    """Where a header entry's data begins (-1 when malformed: `_entry` then reports it)."""
    try:
        return int(t["data_offsets"][0])
    except (KeyError, TypeError, ValueError, IndexError):
        return -1


def _entry(p: Path, key: str, t: Any, meta: dict, pos: int) -> WeightEntry:
    ok = (
        isinstance(t, dict)
        and t.get("dtype") == "U8"
        and isinstance(t.get("shape"), list)
        and len(t["shape"]) == 1
        and t.get("data_offsets") == [pos, pos + t["shape"][0]]
        and t["shape"][0] % ALIGN == 0
    )
    if not ok:
        raise ArtifactError(f"{p}: tensor {key!r} {t!r} is not a 64-aligned U8 block at {pos}")
    try:
        m = json.loads(meta[key])
        nbytes = int(m["nbytes"])
        if not {"dtype", "layout", "shape"} <= m.keys():
            raise ValueError(f"keys {sorted(m)}")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ArtifactError(f"{p}: tensor {key!r} has no valid lmc metadata ({e})") from None
    if not 0 <= nbytes <= t["shape"][0]:
        raise ArtifactError(f"{p}: tensor {key!r}: nbytes {nbytes} exceeds its block")
    return WeightEntry(key, pos, nbytes, m)
