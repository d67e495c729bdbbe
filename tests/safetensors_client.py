"""The real `safetensors` and `numpy` packages against mmap-serve's tensor endpoints (driven by tests/safetensors.rs).

    python3 tests/safetensors_client.py write PATH VARIANT   # a checkpoint of many dtypes and shapes
    python3 tests/safetensors_client.py check PATH URL       # URL: http://127.0.0.1:PORT/m.safetensors

`check` fetches every tensor the way a client would, turning the bytes into an array with the dtype and shape
the response's X-Tensor-Dtype and X-Tensor-Shape give, and compares it with `safe_open(PATH).get_tensor(name)`;
then ranges inside each tensor, the header endpoint, and a name with slashes written both ways. It prints
`checked N tensors` and exits 0, or fails with an AssertionError.
"""

import http.client
import json
import sys
import urllib.parse

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

# The safetensors dtype names numpy has, as little-endian numpy dtypes (the format is little-endian).
DTYPES = {
    "BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "F16": "<f2",
    "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8", "I64": "<i8", "F64": "<f8",
}


def checkpoint(variant):
    """Tensors of every numpy dtype safetensors knows, names with dots and slashes, a scalar, an empty one, and
    one large enough (128 KiB) to be memory-mapped. `variant` changes the values, never the names or shapes."""
    rng = np.random.default_rng(1234 + variant)
    return {
        "model.embed_tokens.weight": rng.standard_normal((16, 24)).astype(np.float16),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 5, 3)).astype(np.float32),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((256, 128)).astype(np.float32),
        "bert/encoder/layer_0/kernel": rng.standard_normal(7),
        "ids": rng.integers(-2**62, 2**62, 33, dtype=np.int64),
        "mask": rng.integers(0, 2, (4, 4)).astype(bool),
        "small.i8": rng.integers(-128, 127, 5, dtype=np.int8),
        "u8": rng.integers(0, 255, (2, 2, 2), dtype=np.uint8),
        "i16": rng.integers(-30000, 30000, (3, 3), dtype=np.int16),
        "u16": rng.integers(0, 60000, (3, 2), dtype=np.uint16),
        "i32": rng.integers(-2**31, 2**31 - 1, (2, 3, 4), dtype=np.int32),
        "u32": rng.integers(0, 2**32 - 1, 6, dtype=np.uint32),
        "u64": rng.integers(0, 2**63, 4, dtype=np.uint64),
        "step": np.array(1000 + variant, dtype=np.int32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


class Client:
    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.base = parts.path

    def get(self, path, headers=None, method="GET"):
        self.conn.request(method, self.base + path, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def tensor_path(name, encode_slashes=True):
    return "/tensors/" + urllib.parse.quote(name, safe="" if encode_slashes else "/")


def check(path, url):
    client = Client(url)
    with safe_open(path, framework="np") as f:
        expected = {name: f.get_tensor(name) for name in f.keys()}

    status, headers, body = client.get("/header")
    assert status == 200 and headers["content-type"] == "application/json", (status, headers)
    header = json.loads(body)
    assert sorted(k for k in header if k != "__metadata__") == sorted(expected), header.keys()
    with open(path, "rb") as raw:
        n = int.from_bytes(raw.read(8), "little")
        assert body == raw.read(n), "the header endpoint is the file's header bytes"

    etags = set()
    for name, array in expected.items():
        status, headers, body = client.get(tensor_path(name))
        assert status == 200, (name, status, body[:200])
        assert headers["content-type"] == "application/octet-stream", headers
        assert int(headers["content-length"]) == array.nbytes, (name, headers)
        dtype, shape = headers["x-tensor-dtype"], headers.get("x-tensor-shape", "")
        assert dtype == header[name]["dtype"], (name, dtype)
        dims = tuple(int(d) for d in shape.split(",")) if shape else ()
        got = np.frombuffer(body, dtype=DTYPES[dtype]).reshape(dims)
        assert got.shape == array.shape and got.dtype == array.dtype, (name, got.dtype, got.shape)
        assert np.array_equal(got, array), name
        etags.add(headers["etag"])

        raw = array.tobytes()
        size = len(raw)
        if size >= 4:
            # A range inside the tensor, in the tensor's coordinates.
            status, headers, body = client.get(tensor_path(name), {"Range": f"bytes=1-{size - 2}"})
            assert status == 206, (name, status)
            assert headers["content-range"] == f"bytes 1-{size - 2}/{size}", headers
            assert body == raw[1:-1], name
            status, headers, body = client.get(tensor_path(name), {"Range": "bytes=-3"})
            assert (status, body) == (206, raw[-3:]), (name, status)
        else:
            status, headers, body = client.get(tensor_path(name), {"Range": f"bytes={size}-"})
            assert status == 416 and headers["content-range"] == f"bytes */{size}", (name, status, headers)

        status, headers, body = client.get(tensor_path(name), method="HEAD")
        assert status == 200 and body == b"" and int(headers["content-length"]) == size, name

    assert len(etags) == len(expected), "every tensor has an ETag of its own"

    # A slash in a name, written as itself.
    name = "bert/encoder/layer_0/kernel"
    status, headers, body = client.get(tensor_path(name, encode_slashes=False))
    assert status == 200 and np.array_equal(np.frombuffer(body, "<f8"), expected[name]), status
    status, _, _ = client.get(tensor_path("no.such.tensor"))
    assert status == 404, status
    print(f"checked {len(expected)} tensors")


def main():
    command = sys.argv[1]
    if command == "write":
        save_file(checkpoint(int(sys.argv[3])), sys.argv[2], metadata={"format": "np"})
    elif command == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
