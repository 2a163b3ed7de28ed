"""Writes tiny.safetensors and linear.safetensors, the embedded-weights fixtures of the `no_std`
test crate (the second, in f64, for a stack of linear layers whose prepared form is computed at
compile time), following
the safetensors spec byte by byte: an 8-byte little-endian header length, a JSON header, then the
little-endian data. The values are deterministic and include a negative zero, a subnormal and
values near the f32 range's ends, so that embedding is checked bit for bit."""
import json, struct, os

def values(n, seed):
    out, x = [], seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(((x >> 40) / (1 << 24) - 0.5) * 2.0)
    return out

tensors = {
    "hidden.w": ([5, 3], values(15, 1)),
    "hidden.b": ([5], [-0.0, 1e-40, -3.0e38, 0.1, 1.0 / 3.0]),
    "output.w": ([2, 5], values(10, 2)),
    "output.b": ([2], [0.25, -0.75]),
}

def write(path, tensors, fmt, dtype):
    header, data = {}, b""
    for name, (shape, vals) in tensors.items():
        blob = b"".join(struct.pack(fmt, v) for v in vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(os.path.dirname(__file__), path), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)

write("tiny.safetensors", tensors, "<f", "F32")
write("linear.safetensors", {
    "a.w": ([4, 3], values(12, 3)),
    "a.b": ([4], values(4, 4)),
    "b.w": ([2, 4], values(8, 5)),
    "b.b": ([2], values(2, 6)),
}, "<d", "F64")
