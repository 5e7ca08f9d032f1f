"""Output arrays of the ops: large ones come from a cache of blocks already written once.

A fresh array of tens of MB costs page faults before a kernel can write it (glibc serves allocations above 32 MB with a new mmap each time, and the kernel then maps every
page on first touch): more than a batch norm forward over it takes. Outputs of ``MIN_BYTES`` or
more are therefore cut from blocks kept here: a block goes back to the cache when the last array
using it is gone (its last view included), and the next output of that size reuses its pages.
A training loop allocates the same shapes every step, so after the first step its large
outputs cost no page faults. Smaller outputs are plain ``np.empty`` (glibc reuses those).

The arrays are ordinary, writable, C-contiguous NumPy arrays (their ``base`` chain ends in a
ctypes buffer that holds the block); nothing is handed out twice while any view of it lives.
The cache keeps at most ``max_bytes`` of idle blocks (default 512 MB; environment variable
``FASTINIT_OUTPUT_CACHE_MB``, 0 turns it off): see :func:`set_output_cache` and
:func:`clear_output_cache`.
"""
import ctypes
import math
import os
import threading
import weakref

import numpy as np

MIN_BYTES = 16 << 20          # from here on an output comes from the cache
_GRANULE = 1 << 20            # block sizes are whole MB: near sizes share blocks
_ALIGN = 4096                 # blocks start on a page (64-byte streaming stores need 64)
_SMALL = MIN_BYTES // 16      # element counts below this are small in any dtype (<= 16 bytes)

_lock = threading.RLock()     # RLock: a release may run inside a take (a GC pass there)
_idle = {}                    # block bytes -> list of idle blocks (uint8 arrays)
_idle_bytes = 0


def _env_limit():
    value = os.environ.get("FASTINIT_OUTPUT_CACHE_MB", "").strip() or "512"
    try:
        mb = int(value)
    except ValueError:
        mb = -1
    if mb < 0:
        raise ValueError(f"FASTINIT_OUTPUT_CACHE_MB must be an integer >= 0 (megabytes; 0 turns "
                         f"the output cache off), got {value!r}")
    return mb << 20


_max_bytes = _env_limit()


def _after_fork_in_child():
    """A fork while another thread held the lock would leave it held in the child forever."""
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, from the cache when it is ``MIN_BYTES`` or more."""
    count = math.prod(shape)
    if count < _SMALL or _max_bytes == 0:   # below MIN_BYTES whatever the dtype (on every call)
        return np.empty(shape, dtype)
    dtype = np.dtype(dtype)
    nbytes = count * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    block = _take(-(-nbytes // _GRANULE) * _GRANULE)
    holder = (ctypes.c_char * nbytes).from_buffer(block)
    weakref.finalize(holder, _release, block).atexit = False
    return np.frombuffer(holder, dtype=dtype, count=count).reshape(shape)


def zeros(shape, dtype):
    """``np.zeros(shape, dtype)``, from the cache when it is ``MIN_BYTES`` or more."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def _take(size):
    global _idle_bytes
    with _lock:
        blocks = _idle.get(size)
        if blocks:
            _idle_bytes -= size
            return blocks.pop()
    raw = np.empty(size + _ALIGN, np.uint8)
    start = (-raw.ctypes.data) % _ALIGN
    return raw[start:start + size]


def _release(block):
    """The last array on ``block`` is gone: keep it for the next output of its size."""
    global _idle_bytes
    size = block.nbytes
    with _lock:
        if _idle_bytes + size <= _max_bytes:
            _idle.setdefault(size, []).append(block)
            _idle_bytes += size


def set_output_cache(max_mb):
    """Keep at most ``max_mb`` MB of idle output blocks (0: no cache; outputs are then plain
    ``np.empty``); returns the previous limit in MB. Blocks beyond a lowered limit are freed."""
    global _max_bytes, _idle_bytes
    if isinstance(max_mb, bool) or not isinstance(max_mb, (int, np.integer)) or max_mb < 0:
        raise ValueError(f"max_mb must be an integer >= 0 (megabytes), got {max_mb!r}")
    with _lock:
        previous = _max_bytes >> 20
        _max_bytes = int(max_mb) << 20
        for size in sorted(_idle, reverse=True):
            while _idle[size] and _idle_bytes > _max_bytes:
                _idle[size].pop()
                _idle_bytes -= size
    return previous


def clear_output_cache():
    """Free every idle output block (arrays still in use are untouched); returns the bytes
    freed."""
    global _idle_bytes
    with _lock:
        freed = _idle_bytes
        _idle.clear()
        _idle_bytes = 0
    return freed


def output_cache_info():
    """``{"max_bytes": ..., "idle_bytes": ..., "idle_blocks": ...}`` of the cache."""
    with _lock:
        return {"max_bytes": _max_bytes, "idle_bytes": _idle_bytes,
                "idle_blocks": sum(len(b) for b in _idle.values())}
