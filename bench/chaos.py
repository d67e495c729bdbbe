#!/usr/bin/env python3
"""Chaos test: files changing under load, every response classified byte for byte (issue 14).

    python3 bench/chaos.py --url http://127.0.0.1:18180 --root DIR --setup --duration 60

`--setup` writes the 20 fixture files into DIR (the server must serve DIR at /). Then a mutator process changes
them every 50-300 ms (seeded: the same schedule for every server) while 32 clients (20% slow readers, spread over
--procs processes) make full GET, single-range, multi-range, If-Range and If-None-Match requests on keep-alive
connections. Every complete response is compared with every version ever written (the versions are never stored:
any byte of any version is recomputed from (file id, generator id, offset)). See bench/chaos.sh for a whole run
and BENCHMARKS.md ("Files changing under load") for what the classes mean.

Exit status: 0 when no defect class (TORN, CORRUPT, MISLABELED, IF_RANGE_SPLICE, NOT_MODIFIED_STALE) and no HUNG
request was seen, 1 otherwise, 2 on a usage or setup error.

Python 3.11 standard library only. `--self-test-server PORT --fault F` runs a small reference server over DIR
instead (honest, or with one deliberate fault) to check that the classification finds what it should.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import math
import multiprocessing as mp
import os
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter

PAGE = 4096
MAX_LEN = 64 << 20
NFILES = 20
MIN_BASE = 64 << 10
DEFECTS = ("TORN", "CORRUPT", "MISLABELED", "IF_RANGE_SPLICE", "NOT_MODIFIED_STALE")
CLASSES = DEFECTS + (
    "OK", "OK_304", "STALE", "ABORTED", "RETRY_503", "HUNG", "ERROR", "NOT_FOUND", "RANGE_416", "OTHER"
)
KINDS = ("rename", "inplace", "region", "truncate", "append", "recreate", "cp_p")
FOLLOW_UPS = ("extend", "rewrite_truncated")
HUNG_AFTER = 30.0
NAN = float("nan")

# --- content ------------------------------------------------------------------------------------------------
# Byte o of generator gid of file fid lies in the 8-byte block o//8. A page's first block is
# (fid << 24 | page, gid), its other blocks (fid << 24 | 1 << 23 | index in page, gid), little-endian u32 pairs:
# every block names the file, the generator and its position, no block is zero, and two generators differ in
# every block (so two versions differ in every page they do not share).

_tails: dict[tuple[int, int], bytes] = {}


def _tail(fid: int, gid: int) -> bytes:
    key = (fid, gid)
    t = _tails.get(key)
    if t is None:
        base = (fid << 24) | (1 << 23)
        t = b"".join(struct.pack("<II", base | j, gid) for j in range(1, PAGE // 8))
        if len(_tails) > 4096:
            _tails.clear()
        _tails[key] = t
    return t


def gen(fid: int, gid: int, a: int, b: int) -> bytes:
    """Bytes [a, b) of generator gid of file fid."""
    if b <= a:
        return b""
    p0, p1 = a // PAGE, (b - 1) // PAGE
    tail = _tail(fid, gid)
    hi = fid << 24
    pieces = []
    for p in range(p0, p1 + 1):
        pieces.append(struct.pack("<II", hi | p, gid))
        pieces.append(tail)
    s = b"".join(pieces)
    return s[a - p0 * PAGE : b - p0 * PAGE]


def same_as_gen(fid: int, gid: int, s: int, e: int, data, base: int) -> bool:
    """Whether data[s - base : e - base] is bytes [s, e) of generator gid, compared page by page in place."""
    tail = memoryview(_tail(fid, gid))
    hi = fid << 24
    pack = struct.pack
    p = s // PAGE
    while s < e:
        ps = p * PAGE
        pe = min(e, ps + PAGE)
        if s < ps + 8:
            h = pack("<II", hi | p, gid)
            hs, he = s - ps, min(8, pe - ps)
            if data[s - base : ps + he - base] != h[hs:he]:
                return False
            s = ps + he
        if s < pe:
            if data[s - base : pe - base] != tail[s - ps - 8 : pe - ps - 8]:
                return False
        s = pe
        p += 1
    return True


def block_at(fid: int, gid: int, off: int) -> bytes:
    """The 8-byte block of generator gid containing offset off (off is rounded down to 8)."""
    off -= off % 8
    if off % PAGE == 0:
        return struct.pack("<II", (fid << 24) | (off // PAGE), gid)
    return struct.pack("<II", (fid << 24) | (1 << 23) | ((off % PAGE) // 8), gid)


class Version:
    """One state of one file: its length and extents [(start, end, gid)] covering [0, length)."""

    __slots__ = ("fid", "index", "step", "length", "extents", "kind", "keeps_mtime")

    def __init__(self, fid, index, step, extents, kind, keeps_mtime=False):
        self.fid, self.index, self.step, self.kind, self.keeps_mtime = fid, index, step, kind, keeps_mtime
        self.extents = [e for e in extents if e[1] > e[0]]
        self.length = self.extents[-1][1] if self.extents else 0

    def content(self, a: int, b: int) -> bytes:
        return b"".join(gen(self.fid, g, max(a, s), min(b, e)) for s, e, g in self.extents if s < b and e > a)

    def matches(self, a: int, data) -> bool:
        """Whether data (a memoryview) is this version's bytes at offset a."""
        n = len(data)
        if a < 0 or a + n > self.length:
            return False
        b = a + n
        for s, e, g in self.extents:
            if s < b and e > a and not same_as_gen(self.fid, g, max(a, s), min(b, e), data, a):
                return False
        return True

    def name(self) -> str:
        return f"f{self.fid:02d}v{self.index}"


def with_range(extents, a, b, gid):
    """extents with [a, b) replaced by generator gid."""
    out = []
    for s, e, g in extents:
        if e <= a or s >= b:
            out.append((s, e, g))
            continue
        if s < a:
            out.append((s, a, g))
        if e > b:
            out.append((b, e, g))
    out.append((a, b, gid))
    out.sort()
    return out


def clipped(extents, length):
    return [(s, min(e, length), g) for s, e, g in extents if s < length]


class Plan:
    """The fixture files, the seeded schedule of changes and every version each change writes."""

    def __init__(self, seed: int, duration: float, mutate: bool):
        rng = random.Random(seed)
        self.bases = []
        for i in range(NFILES):
            size = MIN_BASE * (MAX_LEN / MIN_BASE) ** (i / (NFILES - 1))
            self.bases.append(int(size) - (0 if i in (0, NFILES - 1) else rng.randrange(1, PAGE)))
        self.versions = [[Version(f + 1, 0, -1, [(0, self.bases[f], f + 1)], "initial")] for f in range(NFILES)]
        self.steps = []  # (delay before, fid, kind, params, version)
        if mutate:
            self._plan(rng, duration)
        self._holds()

    def _plan(self, rng, duration):
        gid = NFILES + 1
        pending = {}  # step index -> file with a truncation to follow up
        n = int(duration / 0.05) + 50
        for k in range(n):
            delay = rng.uniform(0.05, 0.3)
            if k in pending:
                f = pending.pop(k)
                kind = rng.choice(FOLLOW_UPS)
            else:
                while True:
                    f = rng.randrange(NFILES)
                    if f not in pending.values():
                        break
                kind = rng.choice(KINDS)
            cur = self.versions[f][-1]
            base, L = self.bases[f], cur.length
            params = {}
            keeps = False
            if kind in ("rename", "recreate", "rewrite_truncated"):
                new_len = base if rng.random() < 0.5 else rng.randint(base * 85 // 100, base)
                ext = [(0, new_len, gid)]
            elif kind in ("inplace", "cp_p"):
                ext = [(0, L, gid)]
                keeps = kind == "cp_p"
            elif kind == "region":
                a = rng.randrange(L)
                b = min(L, a + rng.randint(1, 512 << 10))
                params = {"at": a, "end": b}
                ext = with_range(cur.extents, a, b, gid)
            elif kind == "truncate":
                new_len = rng.randint(max(1, L // 10), max(1, L * 9 // 10))
                params = {"length": new_len}
                ext = clipped(cur.extents, new_len)
                due = k + rng.randint(2, 8)
                while due in pending:
                    due += 1
                pending[due] = f
            elif kind in ("append", "extend"):
                room = MAX_LEN - L
                if room <= 0:
                    kind = "region"
                    a = rng.randrange(L)
                    b = min(L, a + rng.randint(1, 512 << 10))
                    params = {"at": a, "end": b}
                    ext = with_range(cur.extents, a, b, gid)
                else:
                    if kind == "append":
                        add = rng.randint(1, min(room, 1 << 20))
                    else:
                        add = rng.randint(1, min(room, max(1, base - L) if base > L else 1 << 20))
                    params = {"at": L, "end": L + add}
                    ext = cur.extents + [(L, L + add, gid)]
            v = Version(f + 1, len(self.versions[f]), k, ext, kind, keeps)
            self.versions[f].append(v)
            self.steps.append((delay, f, kind, params, v))
            gid += 1

    def _holds(self):
        # Every (generator, offset range) that some version of the file holds: what a piece of a response may be.
        self.holds = []
        for f in range(NFILES):
            h = {}
            for v in self.versions[f]:
                for s, e, g in v.extents:
                    h.setdefault(g, []).append((s, e))
            self.holds.append(h)

    def path(self, root, f):
        return os.path.join(root, f"f{f + 1:02d}.bin")

    def setup(self, root):
        for f in range(NFILES):
            v = self.versions[f][0]
            with open(self.path(root, f), "wb") as out:
                for a in range(0, v.length, 8 << 20):
                    out.write(v.content(a, min(v.length, a + (8 << 20))))
        os.chmod(root, 0o755)


# --- the mutator (its own process) --------------------------------------------------------------------------


def mutator(plan: Plan, root: str, times, started, deadline: float, errors):
    """Applies the schedule until the deadline; times[2k], times[2k+1] = start, end of change k (monotonic)."""
    try:
        for k, (delay, f, kind, params, v) in enumerate(plan.steps):
            time.sleep(delay)
            if time.monotonic() >= deadline:
                break
            path = plan.path(root, f)
            data = None
            if kind in ("rename", "recreate", "rewrite_truncated", "inplace", "cp_p"):
                data = v.content(0, v.length)
            elif kind in ("region", "append", "extend"):
                data = v.content(params["at"], params["end"])
            if kind == "rename":
                tmp = os.path.join(root, f".tmp-f{f + 1:02d}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, data)
                os.fsync(fd)
                os.close(fd)
                started.value = k
                times[2 * k] = time.monotonic()
                os.rename(tmp, path)
                times[2 * k + 1] = time.monotonic()
            elif kind == "recreate":
                started.value = k
                times[2 * k] = time.monotonic()
                os.unlink(path)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, data)
                os.close(fd)
                times[2 * k + 1] = time.monotonic()
            elif kind == "truncate":
                started.value = k
                times[2 * k] = time.monotonic()
                os.truncate(path, params["length"])
                times[2 * k + 1] = time.monotonic()
            else:
                fd = os.open(path, os.O_WRONLY)
                st = os.fstat(fd)
                at = params.get("at", 0)
                started.value = k
                times[2 * k] = time.monotonic()
                os.pwrite(fd, data, at)
                if kind == "rewrite_truncated":
                    # The file may have grown since its truncation (an append of another schedule step): the
                    # rewrite ends where the version ends, as a program rewriting the file in place would.
                    os.ftruncate(fd, v.length)
                if kind == "cp_p":
                    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                times[2 * k + 1] = time.monotonic()
                os.close(fd)
            size = os.stat(path).st_size
            if size != v.length:
                errors.put(f"change {k} ({kind} of f{f + 1:02d}): size {size}, planned {v.length}")
                return
    except Exception as e:  # reported by the parent
        errors.put(f"mutator: {e!r}")


# --- the clients ----------------------------------------------------------------------------------------------


def resolve(spec, length):
    """RFC 9110 ranges of one spec ("a-b", "a-", "-n") on a representation of length; None if unsatisfiable."""
    a, _, b = spec.partition("-")
    if a == "":
        n = int(b)
        if n == 0 or length == 0:
            return None
        return (max(0, length - n), length - 1)
    a = int(a)
    if a >= length:
        return None
    return (a, length - 1 if b == "" else min(int(b), length - 1))


class Client:
    def __init__(self, cid, slow, ctx):
        self.cid, self.slow, self.ctx = cid, slow, ctx
        self.rng = random.Random(ctx.seed * 1000 + cid)
        self.conn = None

    def connect(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = http.client.HTTPConnection(self.ctx.host, self.ctx.port, timeout=HUNG_AFTER)

    def run(self):
        ctx, rng = self.ctx, self.rng
        while time.monotonic() < ctx.deadline:
            if self.conn is None:
                self.connect()
            f = rng.randrange(NFILES)
            self.one(f)

    def pick_range(self, L):
        rng = self.rng
        L = max(L, 1)
        r = rng.random()
        if r < 0.7:
            a = rng.randrange(L)
            return f"{a}-{a + rng.randint(1, min(L - a, 1 << 20)) - 1}"
        if r < 0.85:
            return f"-{rng.randint(1, min(L, 1 << 20))}"
        return f"{max(0, L - rng.randint(1, min(L, 1 << 20)))}-"

    def pick_multi(self, L):
        rng = self.rng
        k = rng.randint(2, 4)
        if L < k * 256:
            return None
        cuts = sorted(rng.sample(range(0, L - 1), k))
        specs = []
        for i, a in enumerate(cuts):
            limit = (cuts[i + 1] if i + 1 < k else L) - a
            if limit < 200:
                continue
            n = rng.randint(1, min(limit - 100, 64 << 10))
            specs.append(f"{a}-{a + n - 1}")
        return specs if len(specs) >= 2 else None

    def one(self, f):
        ctx, rng = self.ctx, self.rng
        known = ctx.known_len.get(f, ctx.plan.bases[f])
        seen = ctx.seen.get(f, [])
        r = rng.random()
        kind, headers, specs, validator = "full", {}, None, None
        if r < 0.25:
            pass
        elif r < 0.5:
            kind, specs = "range", [self.pick_range(known)]
        elif r < 0.65:
            specs = self.pick_multi(known)
            kind = "multi" if specs else "full"
        elif r < 0.85 and seen:
            kind, specs = "if_range", [self.pick_range(known)]
            validator = seen[-1] if rng.random() < 0.5 else rng.choice(seen)
            headers["If-Range"] = validator
        elif seen:
            kind = "inm"
            validator = seen[-1] if rng.random() < 0.5 else rng.choice(seen)
            headers["If-None-Match"] = validator
        if specs:
            headers["Range"] = "bytes=" + ",".join(specs)
        path = f"/f{f + 1:02d}.bin"
        t0 = time.monotonic()
        got_byte = False
        resp = None
        try:
            self.conn.request("GET", path, headers=headers)
            resp = self.conn.getresponse()
            got_byte = True
            result = self.read(f, kind, specs, validator, resp, t0)
        except socket.timeout:
            result = ("HUNG", {"after_headers": got_byte})
            self.connect()
        except (OSError, http.client.HTTPException) as e:
            result = ("ABORTED", {"error": type(e).__name__, "before_headers": not got_byte})
            self.connect()
        t1 = time.monotonic()
        cls, info = result
        ctx.record(cls, f, kind, t0, t1, info, headers, resp)

    def read_body(self, resp, sink):
        """Reads the body into sink(offset_in_body, bytes); returns the byte count."""
        total = 0
        piece = 64 << 10 if self.slow else 1 << 20
        while True:
            chunk = resp.read(piece)
            if not chunk:
                return total
            sink(total, chunk)
            total += len(chunk)
            if self.slow:
                time.sleep(self.rng.uniform(0.001, 0.006))

    def read(self, f, kind, specs, validator, resp, t0):
        ctx = self.ctx
        status = resp.status
        etag = resp.getheader("ETag")
        if etag:
            ctx.note_etag(f, etag)
        cl = resp.getheader("Content-Length")
        cl = int(cl) if cl is not None else None
        if status >= 500 or status not in (200, 206):
            body = resp.read()
            if cl is not None and len(body) < cl:
                self.connect()
                return "ABORTED", {"status": status}
            if status == 503 and resp.getheader("Retry-After") is not None:
                # Not a defect: no bytes and no labels (mmap-serve: an empty file still being written).
                return "RETRY_503", {"retry_after": resp.getheader("Retry-After")}
            if status >= 500:
                return "ERROR", {"status": status}
            if status == 304:
                return ctx.judge_304(f, kind, validator, t0, etag)
            if status == 404:
                return "NOT_FOUND", {}
            if status == 416:
                return "RANGE_416", {"content_range": resp.getheader("Content-Range")}
            return "OTHER", {"status": status}
        ctype = resp.getheader("Content-Type", "")
        if status == 206 and ctype.startswith("multipart/byteranges"):
            body = bytearray()
            n = self.read_body(resp, lambda _o, c: body.extend(c))
            if cl is not None and n < cl:
                self.connect()
                return "ABORTED", {"got": n, "content_length": cl}
            parts = parse_multipart(ctype, bytes(body))
            if parts is None:
                return "CORRUPT", {"why": "unparsable multipart body"}
            check = ctx.checker(f)
            total = None
            for (a, b, L), data in parts:
                check.feed(a, data)
                if total is not None and L != total:
                    return "MISLABELED", {"why": "parts with different lengths"}
                total = L
            claimed = [(a, b) for (a, b, _L), _d in parts]
            return ctx.judge(f, kind, specs, validator, t0, status, etag, total, claimed, check)
        if status == 206:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", resp.getheader("Content-Range", ""))
            if not m:
                resp.read()
                return "OTHER", {"why": "206 without a Content-Range"}
            a, b, L = map(int, m.groups())
        else:
            a, b, L = 0, (cl or 0) - 1, cl
        check = ctx.checker(f)
        n = self.read_body(resp, lambda o, c: check.feed(a + o, c))
        if cl is not None and n < cl:
            self.connect()
            return "ABORTED", {"got": n, "content_length": cl}
        if cl is None:
            L = n if status == 200 else L
            b = a + n - 1
        return ctx.judge(f, kind, specs, validator, t0, status, etag, L, [(a, b)], check)


def parse_multipart(ctype, body):
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not m:
        return None
    delim = b"--" + m.group(1).encode()
    parts = []
    at = body.find(delim)
    if at < 0:
        return None
    rest = body[at + len(delim) :]
    while True:
        if rest.startswith(b"--"):
            return parts
        if not rest.startswith(b"\r\n"):
            return None
        head, sep, rest = rest[2:].partition(b"\r\n\r\n")
        if not sep:
            return None
        fields = {}
        for line in head.split(b"\r\n"):
            k, _, val = line.partition(b":")
            fields[k.strip().lower()] = val.strip()
        cr = re.fullmatch(rb"bytes (\d+)-(\d+)/(\d+)", fields.get(b"content-range", b""))
        if not cr:
            return None
        a, b, L = map(int, cr.groups())
        n = b - a + 1
        data, rest = rest[:n], rest[n:]
        if len(data) != n or not rest.startswith(b"\r\n" + delim):
            return None
        rest = rest[2 + len(delim) :]
        parts.append(((a, b, L), data))


class Checker:
    """Which versions explain the pieces fed so far; when none does, whether each piece is still some version's
    bytes (TORN) or not (CORRUPT)."""

    def __init__(self, ctx, f):
        self.ctx, self.f = ctx, f
        self.versions = ctx.candidates(f)
        self.alive = list(self.versions)
        self.corrupt = None  # (offset, why) of the first byte no version holds
        self.pieces = 0

    def feed(self, a, data):
        data = memoryview(data)
        self.pieces += 1
        if self.alive:
            self.alive = [v for v in self.alive if v.matches(a, data)]
            if self.alive:
                return
        if self.corrupt is None:
            self.corrupt = self.explain(a, data)

    def explain(self, a, data):
        """None if every page (else every 8-byte block) of data is some version's bytes there."""
        n = len(data)
        hint = None
        i = 0
        while i < n:
            j = min(n, (a + i) // PAGE * PAGE + PAGE - a)
            piece = data[i:j]
            if hint is not None and hint.matches(a + i, piece):
                i = j
                continue
            hint = next((v for v in self.versions if v.matches(a + i, piece)), None)
            if hint is None:
                bad = self.explain_blocks(a + i, piece)
                if bad is not None:
                    return bad
            i = j
        return None

    def explain_blocks(self, a, data):
        holds = self.ctx.plan.holds[self.f]
        fid = self.f + 1
        n = len(data)
        i = 0
        while i < n:
            off = a + i
            j = min(n, (off // 8) * 8 + 8 - a)
            piece = bytes(data[i:j])
            gids = []
            if len(piece) == 8:
                w0, g = struct.unpack("<II", piece)
                gids = [g]
            else:
                gids = list(holds)
            ok = False
            for g in gids:
                spans = holds.get(g)
                if not spans or not any(s <= off and off + len(piece) <= e for s, e in spans):
                    continue
                blk = block_at(fid, g, off)
                if blk[off % 8 : off % 8 + len(piece)] == piece:
                    ok = True
                    break
            if not ok:
                what = "zeros" if piece.count(0) == len(piece) else "bytes of no version"
                return (off, what)
            i = j
        return None


class Ctx:
    """One client process: its clients, the ETags it saw, its counts and defects."""

    def __init__(self, args, plan, times, started):
        self.args, self.plan, self.times, self.started = args, plan, times, started
        self.seed = args.seed
        u = re.fullmatch(r"http://([^:/]+):(\d+)/?", args.url)
        self.host, self.port = u.group(1), int(u.group(2))
        self.deadline = 0.0
        self.lock = threading.Lock()
        self.known_len = {}
        self.seen = {}  # file -> validators seen, oldest first
        self.etag_versions = {}  # (file, validator) -> set of versions (narrowed as responses come)
        self.counts = Counter()
        self.by_kind = Counter()
        self.defects = []
        self.stale = []
        self.bytes = 0

    # --- the registry, as the mutator filled it in so far
    def t_start(self, v):
        return -math.inf if v.step < 0 else self.times[2 * v.step]

    def t_replaced(self, v):
        """(start, end) of the change that replaced v, NaN while not started, end NaN while under way."""
        vs = self.plan.versions[v.fid - 1]
        if v.index + 1 >= len(vs):
            return (NAN, NAN)
        k = vs[v.index + 1].step
        return (self.times[2 * k], self.times[2 * k + 1])

    def candidates(self, f):
        """Every version of f started so far and the next few planned (a change may start during the response)."""
        k = self.started.value + 40
        return [v for v in self.plan.versions[f] if v.step <= k]

    def current_between(self, v, t0, t1):
        s = self.t_start(v)
        if not (s <= t1):  # NaN: not started
            return False
        _rs, re_ = self.t_replaced(v)
        return math.isnan(re_) or re_ >= t0

    def checker(self, f):
        return Checker(self, f)

    def note_etag(self, f, etag):
        with self.lock:
            lst = self.seen.setdefault(f, [])
            if etag not in lst:
                lst.append(etag)
                if len(lst) > 50:
                    del lst[0]

    # --- verdicts
    def judge_304(self, f, kind, validator, t0, etag):
        if kind != "inm":
            return "OTHER", {"why": "304 to an unconditional request"}
        with self.lock:
            cands = self.etag_versions.get((f, validator))
        if not cands:
            return "OK_304", {"why": "validator never seen on bytes"}
        replaced = [self.t_replaced(v)[1] for v in cands]
        if all(not math.isnan(r) and r < t0 for r in replaced):
            return "NOT_MODIFIED_STALE", {"validator": validator, "names": sorted(v.name() for v in cands),
                                          "replaced_before_request_s": round(t0 - max(replaced), 4)}
        return "OK_304", {}

    def judge(self, f, kind, specs, validator, t0, status, etag, L, claimed, check):
        t1 = time.monotonic()
        info = {"status": status, "etag": etag, "length": L, "ranges": claimed[:4]}
        started = [v for v in check.alive if self.t_start(v) <= t1]
        if not started:
            if check.corrupt is not None:
                info["first_bad"] = check.corrupt
                return "CORRUPT", info
            return "TORN", info
        info["bytes_of"] = [v.name() for v in started]
        cur = [v for v in started if self.current_between(v, t0, t1)]
        if kind == "if_range" and status == 206:
            with self.lock:
                named = self.etag_versions.get((f, validator))
            if named and not (set(started) & named):
                info["if_range_names"] = sorted(v.name() for v in named)
                return "IF_RANGE_SPLICE", info

        def ranges_ok(v):
            if L != v.length:
                return False
            if specs is None:
                return status == 200 and claimed == [(0, v.length - 1)]
            if status == 200:
                return claimed == [(0, v.length - 1)]
            want = [resolve(s, v.length) for s in specs]
            want = [w for w in want if w]
            if len(specs) == 1:
                return claimed == want
            return all(any(wa <= a and b <= wb for wa, wb in want) for a, b in claimed)

        with self.lock:
            named = self.etag_versions.get((f, etag)) if etag else None
            labelled = [v for v in started if ranges_ok(v) and (named is None or v in named)]
            good = [v for v in labelled if v in cur]
            if good:
                if etag:
                    self.etag_versions[(f, etag)] = set(good) if named is None else named & set(good)
                self.known_len[f] = L
                return "OK", {}
        if labelled:
            info["stale_by_s"] = round(t0 - max(self.t_replaced(v)[1] for v in labelled), 4)
            return "STALE", info
        if named is not None:
            info["etag_names"] = sorted(v.name() for v in named)
        return "MISLABELED", info

    def record(self, cls, f, kind, t0, t1, info, headers, resp):
        with self.lock:
            self.counts[cls] += 1
            self.by_kind[(kind, cls)] += 1
            if cls in DEFECTS or cls in ("HUNG", "STALE"):
                # The nearest change of this file that started before the response ended.
                last = None
                during = []
                in_write = False
                for v in self.plan.versions[f][1:]:
                    s = self.times[2 * v.step]
                    if math.isnan(s) or s > t1:
                        break
                    e = self.times[2 * v.step + 1]
                    if v.kind not in ("rename", "truncate") and (math.isnan(e) or e >= t0):
                        in_write = True
                    if s >= t0:
                        during.append(f"{v.kind} -> {v.name()} at +{s - t0:.3f} s")
                    if s <= t0:
                        last = v
                d = dict(info)
                d.update({"class": cls, "file": f"f{f + 1:02d}", "request": kind, "headers": headers,
                          "start_s": round(t0 - self.args.t_base, 4), "took_s": round(t1 - t0, 4),
                          "changes_during": len(during), "changes": during,
                          "in_write": in_write})
                if last is not None:
                    d["since_change_s"] = round(t0 - self.times[2 * last.step], 4)
                    d["since_change_end_s"] = round(t0 - self.times[2 * last.step + 1], 4)
                    d["last_change"] = f"{last.kind} -> {last.name()}"
                (self.stale if cls == "STALE" else self.defects).append(d)


def client_process(args, plan, times, started, cids, out):
    ctx = Ctx(args, plan, times, started)
    ctx.deadline = args.deadline
    threads = []
    for cid in cids:
        c = Client(cid, cid % 5 == 4, ctx)  # 20% slow readers
        t = threading.Thread(target=c.run, daemon=True)
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    out.put({"counts": dict(ctx.counts), "by_kind": {f"{k}:{c}": n for (k, c), n in ctx.by_kind.items()},
             "defects": ctx.defects, "stale": ctx.stale[:200], "stale_count": len(ctx.stale)})


# --- the run --------------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="server base URL, http://127.0.0.1:PORT")
    p.add_argument("--root", required=True, help="the directory the server serves (the fixtures go there)")
    p.add_argument("--setup", action="store_true", help="write the fixture files into --root first")
    p.add_argument("--setup-only", action="store_true", help="write the fixtures and exit")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--procs", type=int, default=2, help="client processes (the clients are spread over them)")
    p.add_argument("--no-mutate", action="store_true", help="leave the files alone (a run must have no defect)")
    p.add_argument("--server-pid", type=int, help="check that this process is still alive at the end")
    p.add_argument("--json", help="write the full report (every defect) here")
    p.add_argument("--label", default="server")
    p.add_argument("--self-test-server", type=int, metavar="PORT",
                   help="serve --root on 127.0.0.1:PORT with the reference server instead (see --fault)")
    p.add_argument("--fault", default="none", choices=("none", "stale-meta", "zeros", "ignore-if-range",
                                                       "stale-304", "reopen"))
    args = p.parse_args()
    if args.self_test_server:
        return reference_server(args.root, args.self_test_server, args.fault)
    plan = Plan(args.seed, args.duration, not args.no_mutate)
    if args.setup or args.setup_only:
        plan.setup(args.root)
        if args.setup_only:
            return 0
    if not args.url:
        p.error("--url is needed")
    fork = mp.get_context("fork")
    times = fork.RawArray("d", 2 * max(1, len(plan.steps)))
    for i in range(len(times)):
        times[i] = NAN
    started = fork.RawValue("i", -1)
    errors = fork.Queue()
    out = fork.Queue()
    args.t_base = time.monotonic()
    args.deadline = args.t_base + args.duration
    procs = []
    m = fork.Process(target=mutator, args=(plan, args.root, times, started, args.deadline, errors), daemon=True)
    m.start()
    nprocs = max(1, min(args.procs, args.clients))
    for i in range(nprocs):
        cids = list(range(i, args.clients, nprocs))
        pr = fork.Process(target=client_process, args=(args, plan, times, started, cids, out), daemon=True)
        pr.start()
        procs.append(pr)
    results = [out.get() for _ in procs]
    elapsed = time.monotonic() - args.t_base
    for pr in procs:
        pr.join()
    m.join(timeout=5)
    mutator_errors = []
    while not errors.empty():
        mutator_errors.append(errors.get())
    changes = [(k, s) for k, s in enumerate(plan.steps) if not math.isnan(times[2 * k + 1])]
    counts = Counter()
    by_kind = Counter()
    defects, stale, stale_count = [], [], 0
    for r in results:
        counts.update(r["counts"])
        by_kind.update(r["by_kind"])
        defects += r["defects"]
        stale += r["stale"]
        stale_count += r["stale_count"]
    alive = None
    if args.server_pid:
        try:
            os.kill(args.server_pid, 0)
            alive = True
        except OSError:
            alive = False
    answered = probe(args.url)
    total = sum(counts.values())
    report = {
        "label": args.label, "url": args.url, "seed": args.seed, "duration_s": args.duration,
        "elapsed_s": round(elapsed, 2), "clients": args.clients, "procs": nprocs,
        "mutate": not args.no_mutate, "changes": len(changes),
        "changes_by_kind": dict(Counter(s[2] for _k, s in changes)),
        "requests": total, "requests_per_s": round(total / elapsed, 1),
        "counts": {c: counts.get(c, 0) for c in CLASSES},
        "by_request_kind": dict(sorted(by_kind.items())),
        "server_alive": alive, "server_answers_after": answered,
        "mutator_errors": mutator_errors,
        "defects": sorted(defects, key=lambda d: d["start_s"]), "stale_count": stale_count,
        "stale_sample": stale[:50],
    }
    print_report(report)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
    bad = any(report["counts"][c] for c in DEFECTS + ("HUNG",))
    bad = bad or alive is False or not answered or bool(mutator_errors)
    return 1 if bad else 0


def probe(url):
    u = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
    try:
        c = http.client.HTTPConnection(u.group(1), int(u.group(2)), timeout=10)
        c.request("GET", "/f01.bin", headers={"Range": "bytes=0-0"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status in (200, 206, 404)
    except (OSError, http.client.HTTPException):
        return False


def print_report(r):
    w = sys.stdout.write
    w(f"chaos: {r['label']} at {r['url']}: {r['requests']} requests in {r['elapsed_s']} s "
      f"({r['requests_per_s']}/s), {r['changes']} changes {r['changes_by_kind']}, seed {r['seed']}\n")
    for c in CLASSES:
        n = r["counts"][c]
        if n or c in DEFECTS or c in ("OK", "ABORTED", "HUNG"):
            w(f"  {c:<20} {n:>7}{'   <- defect' if c in DEFECTS and n else ''}\n")
    w(f"  server alive at the end: {r['server_alive']}, answers a request: {r['server_answers_after']}\n")
    for e in r["mutator_errors"]:
        w(f"  MUTATOR ERROR: {e}\n")
    if r["defects"]:
        # Delay from the start of the file's last change before the request (0 if one started during it).
        delays = [0.0 if d["changes_during"] else d["since_change_s"] for d in r["defects"]
                  if d["changes_during"] or "since_change_s" in d]
        w(f"  defects: {len(r['defects'])}; delay since the start of the file's last change before the request "
          f"(0 if one started during it): max {max(delays, default=float('nan')):.3f} s; "
          f"within 1 s: {sum(x <= 1 for x in delays)}/{len(delays)}"
          f"; with a change during the request: {sum(d['changes_during'] > 0 for d in r['defects'])}"
          f"; overlapping a non-atomic write (pwrite, recreate) of the file: "
          f"{sum(d['in_write'] for d in r['defects'])}\n")
        for d in r["defects"][:30]:
            w(f"   {d['class']:<18} {d['file']} {d['request']:<8} t={d['start_s']:.3f} took {d['took_s']:.3f} s, "
              f"{d.get('since_change_s', '-')} s after {d.get('last_change', 'no change')}, "
              f"{d['changes_during']} during; {d.get('status', '')} {d.get('bytes_of', d.get('first_bad', ''))}"
              f" etag {d.get('etag', '')} len {d.get('length', '')}\n")
    if r["stale_count"]:
        w(f"  STALE (consistent, but of a version replaced before the request; not a defect): {r['stale_count']}\n")


# --- the reference server (for validating the harness) -------------------------------------------------------


def reference_server(root, port, fault):
    """A threaded HTTP/1.1 server over root: honest (reads the file once, all of it, then answers), or with one
    fault: stale-meta (ETag and length cached for 1 s, bytes fresh), zeros (one response in 50 gets a zero
    page), ignore-if-range (If-Range never checked), stale-304 (If-None-Match compared with an ETag cached for
    5 s), reopen (a full body's second half read from the path again after 30 ms)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    meta_cache = {}
    lock = threading.Lock()
    counter = [0]

    def meta(path):
        st = os.stat(path)
        return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"', st.st_size

    def cached_meta(path):
        now = time.monotonic()
        with lock:
            hit = meta_cache.get(path)
            if hit and now - hit[0] < (5.0 if fault == "stale-304" else 1.0):
                return hit[1]
        m = meta(path)
        with lock:
            meta_cache[path] = (now, m)
        return m

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            path = os.path.join(root, self.path.lstrip("/"))
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                return self.answer(404, {}, b"")
            try:
                st = os.fstat(fd)
                etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"'
                data = os.pread(fd, st.st_size, 0)
                if fault == "reopen" and len(data) > 1:
                    time.sleep(0.03)
                    half = len(data) // 2
                    with open(path, "rb") as fh:
                        fh.seek(half)
                        rest = fh.read(len(data) - half)
                    data = data[:half] + rest.ljust(len(data) - half, b"\0")
            finally:
                os.close(fd)
            if fault == "stale-meta":
                etag, size = cached_meta(path)
                data = data[:size]
                if len(data) < size:
                    data += b"\0" * (size - len(data))
            if fault == "zeros":
                with lock:
                    counter[0] += 1
                    hit = counter[0] % 50 == 0
                if hit and len(data) > PAGE:
                    data = data[:PAGE] + b"\0" * min(PAGE, len(data) - PAGE) + data[2 * PAGE :]
            size = len(data)
            inm = self.headers.get("If-None-Match")
            if inm:
                cur = cached_meta(path)[0] if fault == "stale-304" else etag
                if inm == cur:
                    return self.answer(304, {"ETag": etag}, b"", length=False)
            rng = self.headers.get("Range")
            ifr = self.headers.get("If-Range")
            if rng and ifr and fault != "ignore-if-range" and ifr != etag:
                rng = None
            if not rng or not rng.startswith("bytes="):
                return self.answer(200, {"ETag": etag}, data)
            ranges = [resolve(s.strip(), size) for s in rng[6:].split(",")]
            ranges = [r for r in ranges if r]
            if not ranges:
                return self.answer(416, {"Content-Range": f"bytes */{size}"}, b"")
            if len(ranges) == 1:
                a, b = ranges[0]
                return self.answer(206, {"ETag": etag, "Content-Range": f"bytes {a}-{b}/{size}"}, data[a : b + 1])
            boundary = "chaosboundary"
            out = []
            for a, b in ranges:
                out.append(f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                           f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n".encode())
                out.append(data[a : b + 1])
            out.append(f"\r\n--{boundary}--\r\n".encode())
            return self.answer(206, {"ETag": etag, "Content-Type": f"multipart/byteranges; boundary={boundary}"},
                               b"".join(out))

        def answer(self, status, headers, body, length=True):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
