"""Face model wrappers: pre-process -> ``session.run`` -> post-process -> domain types.

Everything here is pure apart from the onnxruntime session a wrapper holds, so
the decoding, alignment, quality, liveness fusion and matching maths can be
tested on small arrays.
"""
