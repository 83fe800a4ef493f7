"""Let the shipped EfficientNet-Lite0 export run at input sizes other than 224, by editing its bytes in memory.

The export declares a 224 x 224 input, and its "SAME" paddings are computed by
a chain of shape operations that captured some sizes at 224: at 384 the stem
convolution receives pads of (-79, -80), i.e. the input is cropped, not padded.
Recognition gains from a larger input (a held product covers more of the
network's receptive fields; bench/product_accuracy.py measures it), so
:func:`free_input_size` rewrites the graph:

- the input's height and width become symbolic ("height", "width");
- every ``Pad`` takes constant pads instead of the computed ones: TensorFlow
  "SAME" padding of the convolution it feeds (kernel k, stride s), which for
  sides that are multiples of 32 (every stride-2 layer then sees an even side)
  is ``(k - 1) // 2`` before and the rest after for stride 1, and
  ``(k - 2) // 2`` before, ``k - 1 - (k - 2) // 2`` after for stride 2.

Weights, other nodes and outputs are byte-for-byte the original's; at 224 the
embeddings are identical, and at other sizes they equal an export with
dynamic "SAME" padding (tests/product/test_embedder_sizes.py checks both against golden values). Like
``models.face.derive``, the file is verified against the manifest's sha256
before it is derived from, and the derivation is deterministic.
"""

from __future__ import annotations

import struct

from models.face.derive import LENGTH_DELIMITED, DeriveError, _bytes_field, _encode_varint, _varint, fields

MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT = 1, 5, 11
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE = 1, 2, 3, 4, 5
ATTR_NAME, ATTR_INTS = 1, 8
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_NAME, TENSOR_RAW_DATA = 1, 2, 8, 9
INT64, FLOAT = 7, 1
#: Input sides must be multiples of this (five stride-2 layers), or the constant pads would be wrong.
SIZE_MULTIPLE = 32


def _strings(buf: bytes, number: int) -> list[str]:
    return [buf[p:e].decode("utf-8") for n, w, _, p, e in fields(buf) if n == number and w == LENGTH_DELIMITED]


def _ints(attribute: bytes) -> list[int]:
    """The ``ints`` of an AttributeProto, packed or not."""
    out: list[int] = []
    for number, wire, _, payload, end in fields(attribute):
        if number != ATTR_INTS:
            continue
        if wire == LENGTH_DELIMITED:
            pos = payload
            while pos < end:
                value, pos = _varint(attribute, pos)
                out.append(value)
        else:
            out.append(_varint(attribute, payload)[0])
    return out


def _attributes(node: bytes) -> dict[str, list[int]]:
    attrs = [node[p:e] for n, w, _, p, e in fields(node) if n == NODE_ATTRIBUTE and w == LENGTH_DELIMITED]
    return {_strings(a, ATTR_NAME)[0]: _ints(a) for a in attrs}


def same_pads(kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) of TensorFlow "SAME" padding along a side that the stride divides evenly."""
    total = max(kernel - stride, 0)
    return total // 2, total - total // 2


def _tensor_int64(name: str, values: list[int]) -> bytes:
    body = _encode_varint((TENSOR_DIMS << 3) | 0) + _encode_varint(len(values))
    body += _encode_varint((TENSOR_DATA_TYPE << 3) | 0) + _encode_varint(INT64)
    body += _bytes_field(TENSOR_NAME, name.encode())
    body += _bytes_field(TENSOR_RAW_DATA, struct.pack(f"<{len(values)}q", *values))
    return _bytes_field(GRAPH_INITIALIZER, body)


def _free_input(name: str) -> bytes:
    """ValueInfoProto of a float N x 3 x height x width input."""

    def dim(value: int | str) -> bytes:
        inner = (
            _bytes_field(2, value.encode())
            if isinstance(value, str)
            else _encode_varint((1 << 3) | 0) + _encode_varint(value)
        )
        return _bytes_field(1, inner)

    shape = b"".join(dim(d) for d in ("batch", 3, "height", "width"))
    tensor = _encode_varint((1 << 3) | 0) + _encode_varint(FLOAT) + _bytes_field(2, shape)
    return _bytes_field(GRAPH_INPUT, _bytes_field(1, name.encode()) + _bytes_field(2, _bytes_field(1, tensor)))


def _rewrite_graph(graph: bytes) -> bytes:
    nodes = [(s, graph[p:e]) for n, w, s, p, e in fields(graph) if n == GRAPH_NODE and w == LENGTH_DELIMITED]
    consumers: dict[str, bytes] = {}
    for _, node in nodes:
        for name in _strings(node, NODE_INPUT):
            consumers.setdefault(name, node)
    new_pads: dict[int, bytes] = {}
    initializers = b""
    for start, node in nodes:
        if _strings(node, NODE_OP_TYPE) != ["Pad"]:
            continue
        (output,) = _strings(node, NODE_OUTPUT)
        conv = consumers.get(output)
        if conv is None or _strings(conv, NODE_OP_TYPE) != ["Conv"]:
            raise DeriveError(f"Pad {output!r} does not feed a convolution")
        attrs = _attributes(conv)
        (kh, kw), (sh, sw) = attrs["kernel_shape"], attrs["strides"]
        (hb, ha), (wb, wa) = same_pads(kh, sh), same_pads(kw, sw)
        inputs = _strings(node, NODE_INPUT)
        pads_name = f"store_agent_same_pads/{output}"
        initializers += _tensor_int64(pads_name, [0, 0, hb, wb, 0, 0, ha, wa])
        body = b"".join(_bytes_field(NODE_INPUT, i.encode()) for i in [inputs[0], pads_name, *inputs[2:]])
        body += b"".join(node[s:e] for n, _, s, _, e in fields(node) if n != NODE_INPUT)
        new_pads[start] = _bytes_field(GRAPH_NODE, body)
    if not new_pads:
        raise DeriveError("no Pad nodes: not the EfficientNet-Lite0 export this derivation is for")
    out = bytearray()
    for number, wire, start, payload, end in fields(graph):
        if start in new_pads:
            out += new_pads[start]
        elif number == GRAPH_INPUT and wire == LENGTH_DELIMITED:
            (name,) = _strings(graph[payload:end], 1)
            out += _free_input(name)
        else:
            out += graph[start:end]
    return bytes(out + initializers)


def free_input_size(model: bytes) -> bytes:
    """The model with a symbolic input height and width and constant "SAME" pads (see the module docstring)."""
    out = bytearray()
    found = False
    for number, wire, start, payload, end in fields(model):
        if number == MODEL_GRAPH and wire == LENGTH_DELIMITED:
            out += _bytes_field(MODEL_GRAPH, _rewrite_graph(model[payload:end]))
            found = True
        else:
            out += model[start:end]
    if not found:
        raise DeriveError("no graph in the model")
    return bytes(out)
