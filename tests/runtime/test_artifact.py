"""runtime/weights.py and runtime/artifact.py: digest64 (against the C one), the safetensors
writer/reader, manifests and the output-folder policy."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from lmc.ir.dtypes import round_to_bf16
from lmc.runtime import artifact as af
from lmc.runtime.errors import ArtifactError
from lmc.runtime.weights import _Digest

from .cbuild import build_driver, needs_cc, run


def _words_swapped(b: bytes) -> bytes:
    return b[8:16] + b[0:8] + b[16:]


# ---- digest64 -----------------------------------------------------------------------------------


@needs_cc
def test_digest64_matches_c_bit_for_bit(tmp_path):
    exe = build_driver(tmp_path / "digest", "digest_driver.c", None, ["-O2"], with_model=False)
    rng = np.random.default_rng(0)
    bufs = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in range(0, 131)]
    bufs += [bytes(64), b"\xff" * 77, rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()]
    bufs += [rng.integers(0, 256, (1 << 18) * 8 + 13, dtype=np.uint8).tobytes()]  # > one chunk
    paths = []
    for i, b in enumerate(bufs):
        p = tmp_path / f"buf{i}.bin"
        p.write_bytes(b)
        paths.append(str(p))
    r = run(exe, *paths)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [af.format_digest(af.digest64(b)) for b in bufs]


def test_digest64_sees_flips_swaps_and_length():
    rng = np.random.default_rng(1)
    b = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    d = af.digest64(b)
    flipped = bytearray(b)
    flipped[1000] ^= 0x10
    assert af.digest64(bytes(flipped)) != d
    assert af.digest64(_words_swapped(b)) != d
    assert af.digest64(b + b"\0") != d  # the zero-padded tail does not hide the length
    assert af.digest64(b"") != af.digest64(b"\0")
    assert af.digest64(np.frombuffer(b, np.uint8)) == d == af.digest64(memoryview(b))


def test_digest64_streaming_equals_one_shot():
    rng = np.random.default_rng(2)
    b = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    for _ in range(20):
        cuts = sorted(rng.integers(0, len(b), 6).tolist())
        d = _Digest()
        prev = 0
        for c in [*cuts, len(b)]:
            d.update(b[prev:c])
            prev = c
        assert d.digest() == af.digest64(b)


# ---- weights ------------------------------------------------------------------------------------


def _blobs(rng):
    return {
        "w.f32": af.blob(rng.standard_normal((3, 5)).astype(np.float32), "f32"),
        "w.f16": af.blob(rng.standard_normal(7).astype(np.float16), "f16"),
        "w.bf16": af.blob(rng.standard_normal((2, 3)).astype(np.float32), "bf16"),
        "w.i8": af.blob(rng.integers(-128, 127, 70).astype(np.int8), "i8"),
        "w.u64": af.blob(np.arange(9, dtype=np.uint64) << np.uint64(40), "u64"),
        "w.bool": af.blob(np.array([True, False, True]), "bool"),
        "w.empty": af.blob(np.zeros((0, 4), np.float32), "f32"),
        "w.packed": (bytes(range(100)), {"dtype": "f32", "shape": [5, 5], "layout": "gemm_nk16"}),
    }


def test_weights_roundtrip_layout_and_metadata(tmp_path):
    rng = np.random.default_rng(3)
    blobs = _blobs(rng)
    path = tmp_path / "w.safetensors"
    w = af.write_weights(path, blobs)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 64 == 0 and len(raw) == 8 + n + w.data_bytes
    header = json.loads(raw[8 : 8 + n])  # a plain safetensors header
    pos = 0
    for key in sorted(blobs):  # sorted order, 64-aligned, no holes
        t = header[key]
        assert t["dtype"] == "U8" and t["data_offsets"] == [pos, pos + t["shape"][0]]
        assert t["shape"][0] % 64 == 0 and w.offsets[key][0] == pos
        pos += t["shape"][0]
    assert pos == w.data_bytes
    assert w.sha256 == hashlib.sha256(raw).hexdigest()
    assert w.digest64 == af.digest64(raw[8 + n :])

    wf = af.read_weights(path)
    assert sorted(wf) == sorted(blobs) and wf.digest64 == w.digest64
    assert wf.metadata == {"__lmc_format__": "1"}
    for key, (data, meta) in blobs.items():
        e = wf.entries[key]
        assert e.dtype.value == meta["dtype"] and e.layout == meta["layout"]
        assert wf.raw(key).tobytes() == bytes(np.asarray(data).tobytes())
    np.testing.assert_array_equal(wf["w.f32"], blobs["w.f32"][0])
    np.testing.assert_array_equal(wf["w.u64"], np.arange(9, dtype=np.uint64) << np.uint64(40))
    assert wf["w.empty"].shape == (0, 4) and wf["w.bool"].dtype == np.bool_
    assert wf["w.packed"].dtype == np.uint8 and len(wf["w.packed"]) == 100  # raw: not plain
    with pytest.raises(ArtifactError, match="layout 'gemm_nk16'"):
        wf.array("w.packed")
    with pytest.raises(KeyError, match="no weight 'nope'"):
        wf.raw("nope")


def test_bf16_blob_rounds_to_nearest_even(tmp_path):
    x = np.array([1.0, 1.00390625, 1.01171875, -2.5, 3.0e38], dtype=np.float32)
    data, meta = af.blob(x, "bf16")
    assert data.dtype == np.dtype("<u2") and meta == {
        "dtype": "bf16",
        "shape": [5],
        "layout": "plain",
    }
    af.write_weights(tmp_path / "w", {"b": (data, meta)})
    back = af.read_weights(tmp_path / "w")["b"]
    np.testing.assert_array_equal(back[:4], np.array([1.0, 1.0, 1.015625, -2.5], np.float32))
    np.testing.assert_array_equal(back, round_to_bf16(x))


def test_weights_are_deterministic(tmp_path):
    rng = np.random.default_rng(4)
    blobs = _blobs(rng)
    a = af.write_weights(tmp_path / "a", blobs)
    b = af.write_weights(tmp_path / "b", dict(reversed(list(blobs.items()))))
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() and a == b


def test_empty_weights_file(tmp_path):
    w = af.write_weights(tmp_path / "e", {})
    assert w.data_bytes == 0 and w.offsets == {}
    wf = af.read_weights(tmp_path / "e")
    assert len(wf) == 0 and wf.digest64 == af.digest64(b"")


@pytest.mark.parametrize(
    ("key", "meta", "match"),
    [
        ("__x", {"dtype": "f32", "shape": [1], "layout": "plain"}, "bad key"),
        ("", {"dtype": "f32", "shape": [1], "layout": "plain"}, "bad key"),
        ("k", {"dtype": "f128", "shape": [1], "layout": "plain"}, "not an IR dtype"),
        ("k", {"dtype": "f32", "shape": [-1], "layout": "plain"}, "list of ints"),
        ("k", {"dtype": "f32", "shape": "4", "layout": "plain"}, "list of ints"),
        ("k", {"dtype": "f32", "shape": [1]}, "layout name"),
        ("k", {"dtype": "f32", "shape": [1], "layout": "plain", "nbytes": 8}, "nbytes 8"),
    ],
)
def test_write_weights_rejects_bad_entries(tmp_path, key, meta, match):
    with pytest.raises(ArtifactError, match=match):
        af.write_weights(tmp_path / "w", {key: (bytes(4), meta)})
    assert not (tmp_path / "w").exists()


def test_write_weights_rejects_bad_data_and_metadata(tmp_path):
    meta = {"dtype": "f32", "shape": [1], "layout": "plain"}
    with pytest.raises(ArtifactError, match="expected bytes or a numpy array"):
        af.write_weights(tmp_path / "w", {"k": ([1.0], meta)})
    with pytest.raises(ArtifactError, match="file metadata"):
        af.write_weights(tmp_path / "w", {"k": (bytes(4), meta)}, metadata={"x": "1"})
    w = af.write_weights(tmp_path / "w", {"k": (bytes(4), meta)}, metadata={"__src": "t"})
    assert af.read_weights(tmp_path / "w").metadata["__src"] == "t" and w.data_bytes == 64


def _damaged(tmp_path, fn):
    path = tmp_path / "w"
    af.write_weights(
        path,
        {"a": af.blob(np.ones(20, np.float32), "f32"), "b": af.blob(np.ones(3, np.int8), "i8")},
    )
    raw = bytearray(path.read_bytes())
    out = tmp_path / "bad"
    out.write_bytes(bytes(fn(raw)))
    return out


def _rewrite_header(raw, edit, pad_to=64):
    (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8 : 8 + n])
    edit(h)
    text = json.dumps(h).encode()
    text += b" " * ((-(8 + len(text))) % pad_to)
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda r: r[:5], "too short"),
        (lambda r: r[:100], "truncated"),
        (lambda r: r[:-1], "tensors cover"),
        (lambda r: r + b"\0" * 64, "tensors cover"),
        (lambda r: b"\x05" + bytes(7) + b"{abc}" + bytes(200), "not a JSON object"),
        (lambda r: _rewrite_header(r, lambda h: h.pop("__metadata__")), "not an lmc weights"),
        (
            lambda r: _rewrite_header(r, lambda h: h["__metadata__"].update(__lmc_format__="2")),
            "not an lmc weights",
        ),
        (lambda r: _rewrite_header(r, lambda h: None, pad_to=8), "not 64-aligned"),
        (lambda r: _rewrite_header(r, lambda h: h["a"].update(dtype="F32")), "U8 block"),
        (lambda r: _rewrite_header(r, lambda h: h["__metadata__"].pop("b")), "lmc metadata"),
    ],
)
def test_read_weights_rejects_damaged_files(tmp_path, damage, match):
    with pytest.raises(ArtifactError, match=match):
        af.read_weights(_damaged(tmp_path, damage))


def test_read_weights_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match="cannot read weights file"):
        af.read_weights(tmp_path / "nope")


# ---- manifest and folders -----------------------------------------------------------------------

MANIFEST = {
    "target": "host",
    "inputs": [{"name": "x", "dtype": "f32", "shape": ["s0", 4]}],
    "outputs": [],
    "symbols": {"s0": [1, 8]},
}


def test_manifest_roundtrip_is_deterministic(tmp_path):
    p = af.write_manifest(tmp_path, MANIFEST)
    text = p.read_text()
    m = af.read_manifest(tmp_path)
    assert m["format"] == "lmc-artifact" and m["format_version"] == 1 and m["lmc_version"]
    assert {k: m[k] for k in MANIFEST} == MANIFEST
    assert text.endswith("}\n") and list(json.loads(text)) == sorted(m)
    af.write_manifest(tmp_path, dict(reversed(list(MANIFEST.items()))))
    assert p.read_text() == text
    assert af.is_artifact(tmp_path)


def test_write_manifest_rejects_non_json(tmp_path):
    with pytest.raises(ArtifactError, match="not plain JSON"):
        af.write_manifest(tmp_path, {**MANIFEST, "x": float("nan")})
    with pytest.raises(ArtifactError, match="lacks target"):
        af.write_manifest(tmp_path, {k: v for k, v in MANIFEST.items() if k != "target"})


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "no manifest.json"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not an lmc artifact manifest"),
        ('{"format": "something-else"}', "not an lmc artifact manifest"),
        ('{"format": "lmc-artifact", "format_version": 2}', "format version 2 is not supported"),
        ('{"format": "lmc-artifact"}', "format version None"),
        ('{"format": "lmc-artifact", "format_version": 1}', "lacks lmc_version"),
    ],
)
def test_read_manifest_errors(tmp_path, content, match):
    (tmp_path / "other.txt").write_text("x")
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ArtifactError, match=match):
        af.read_manifest(tmp_path)


def test_read_manifest_missing_folder(tmp_path):
    with pytest.raises(ArtifactError, match="no such folder"):
        af.read_manifest(tmp_path / "nope")


def test_output_folder_policy(tmp_path):
    new = af.prepare_output_dir(tmp_path / "a" / "b")
    assert new.is_dir()
    assert af.prepare_output_dir(new) == new  # empty: fine

    other = tmp_path / "user_stuff"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    for force in (False, True):
        with pytest.raises(ArtifactError, match="not an lmc artifact; refusing"):
            af.prepare_output_dir(other, force=force)
    assert (other / "thesis.tex").read_text() == "precious"

    art = tmp_path / "art"
    art.mkdir()
    af.write_manifest(art, MANIFEST)
    (art / "lib").mkdir()
    (art / "lib" / "x.so").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="force=True"):
        af.prepare_output_dir(art)
    assert (art / "lib" / "x.so").exists()
    assert af.prepare_output_dir(art, force=True) == art and not any(art.iterdir())

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ArtifactError, match="not a folder"):
        af.prepare_output_dir(f)


def test_copy_runtime(tmp_path):
    af.copy_runtime(tmp_path / "src", tmp_path / "include")
    names = sorted(p.name for p in (tmp_path / "src").iterdir())
    assert names == sorted([*af.RUNTIME_SOURCES, *af.RUNTIME_HEADERS])
    assert [p.name for p in (tmp_path / "include").iterdir()] == ["lmc_model.h"]
