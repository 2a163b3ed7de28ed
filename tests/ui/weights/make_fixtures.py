"""Writes the weights files of the embedded-weights compile-fail cases (tests/ui/weights_*.rs),
each wrong in one way for `input: 2, out: dense(1)` in f32 (`out.w` [1, 2], `out.b` [1]),
following the safetensors spec: 8-byte little-endian header length, JSON header, data."""
import json, math, struct, os

HERE = os.path.dirname(__file__)

def write(name, tensors, raw_header=None):
    header, data = {}, b""
    for tname, dtype, shape, vals in tensors:
        fmt = "<f" if dtype == "F32" else "<d"
        blob = b"".join(struct.pack(fmt, v) for v in vals)
        header[tname] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = (raw_header or json.dumps(header, separators=(",", ":"))).encode()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)

good_w = ("out.w", "F32", [1, 2], [0.5, -0.5])
good_b = ("out.b", "F32", [1], [0.1])
write("missing_tensor.safetensors", [good_w])
write("wrong_shape.safetensors", [("out.w", "F32", [2, 1], [0.5, -0.5]), good_b])
write("wrong_dtype.safetensors", [("out.w", "F64", [1, 2], [0.5, -0.5]), good_b])
write("nan.safetensors", [("out.w", "F32", [1, 2], [0.5, math.nan]), good_b])
write("extra_tensor.safetensors", [good_w, good_b, ("fc9.weight", "F32", [1], [1.0])])
dup = '{"out.w":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"out.b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"out.b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}'
write("duplicate_tensor.safetensors", [good_w, good_b], raw_header=dup)
with open(os.path.join(HERE, "not_safetensors.safetensors"), "wb") as f:
    f.write(b"hello, this is not a weights file")

# Finite weights whose collapsed product W' = Wb Wa overflows f32 (2 x 1e20 x 1e20 = 2e40), for
# `input: 2, a: dense(2), b: dense(1)`.
big = 1e20
write("overflow.safetensors", [
    ("a.w", "F32", [2, 2], [big, big, big, big]),
    ("a.b", "F32", [2], [0.0, 0.0]),
    ("b.w", "F32", [1, 2], [big, big]),
    ("b.b", "F32", [1], [0.0]),
])
# Valid tensors followed by bytes that belong to none of them.
header = '{"out.w":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"out.b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}'.encode()
with open(os.path.join(HERE, "trailing_bytes.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + struct.pack("<fff", 0.5, -0.5, 0.1) + b"\0\0\0\0")
