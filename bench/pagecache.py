"""pagecache.py resident|evict|warm FILE...: one line per file, "name pages_before pages_after total_pages".

What bench/cold.sh and bench/load.sh know of the page cache. Residency is mincore(2) on a fresh shared
read-only mapping (which touches no page); eviction is fdatasync + posix_fadvise(POSIX_FADV_DONTNEED) on the
whole file (no root needed; pages mapped by a process or dirty stay); warming reads a file that is not wholly
resident, whole, with pread (so pages_after - pages_before is what had to come back)."""
import ctypes, ctypes.util, mmap, os, sys

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
PAGE = os.sysconf("SC_PAGE_SIZE")
LOW_BIT = bytes(b & 1 for b in range(256))


def resident(fd):
    size = os.fstat(fd).st_size
    pages = (size + PAGE - 1) // PAGE
    if not size:
        return 0, 0
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    try:
        vec = ctypes.create_string_buffer(pages)
        if libc.mincore(addr, size, vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        return vec.raw[:pages].translate(LOW_BIT).count(1), pages
    finally:
        libc.munmap(addr, size)


action, files = sys.argv[1], sys.argv[2:]
if action not in ("resident", "evict", "warm"):
    sys.exit(__doc__)
for path in files:
    fd = os.open(path, os.O_RDONLY)
    try:
        before, pages = resident(fd)
        if action == "evict":
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        elif action == "warm" and before < pages:
            size, at = os.fstat(fd).st_size, 0
            while at < size:
                at += len(os.pread(fd, 1 << 20, at)) or size
        after, _ = resident(fd)
    finally:
        os.close(fd)
    print(os.path.basename(path), before, after, pages)
