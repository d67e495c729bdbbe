"""Python `requests` against a script with a gzip sidecar (tests/precompressed.rs starts the server).

usage: precompressed_requests.py URL SIDECAR_LEN

requests sends `Accept-Encoding: gzip, deflate` (and br/zstd when their modules are installed) and decodes
gzip itself; the checks below fail with a message and exit status 1.
"""

import sys

import requests

url, sidecar_len = sys.argv[1], int(sys.argv[2])
expected = "document.getElementById('out').textContent = 'ran from the .gz';\n"

full = requests.get(url, headers={"Accept-Encoding": "gzip"})
assert full.status_code == 200, full.status_code
assert full.headers["Content-Encoding"] == "gzip", full.headers
assert full.headers["Vary"].lower() == "accept-encoding", full.headers
assert int(full.headers["Content-Length"]) == sidecar_len, full.headers
assert full.text == expected, full.text

# A range of the variant is a range of the sidecar's bytes: fetched raw, without decoding, and joined.
etag = full.headers["ETag"]
first = requests.get(url, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"}, stream=True)
assert first.status_code == 206, first.status_code
assert first.headers["Content-Range"] == f"bytes 0-9/{sidecar_len}", first.headers
rest = requests.get(
    url,
    headers={"Accept-Encoding": "gzip", "Range": "bytes=10-", "If-Range": etag},
    stream=True,
)
assert rest.status_code == 206, rest.status_code
raw = first.raw.read(decode_content=False) + rest.raw.read(decode_content=False)
assert len(raw) == sidecar_len, len(raw)
import gzip  # noqa: E402  (after the network checks, which are the point)

assert gzip.decompress(raw).decode() == expected

# The identity, asked for explicitly.
plain = requests.get(url, headers={"Accept-Encoding": "identity"})
assert "Content-Encoding" not in plain.headers, plain.headers
assert "'gzip-sidecar'" in plain.text
print("ok")
