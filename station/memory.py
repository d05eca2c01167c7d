"""Give the memory that start-up used and freed back to the operating system.

Start-up is the station's most allocation-heavy moment: the modules are compiled and imported, the
database schema is checked (and, on a new database, migrated), the OCPP JSON schemas are loaded.
Much of that is freed again, but glibc's allocator keeps freed heap pages mapped, so the resident
memory of an idle station would carry start-up's peak for ever. On a small field device that is
memory the other processes cannot use. Once the station is up, :func:`release_free_memory` runs a
garbage collection and asks glibc to return free pages (``malloc_trim(0)``). Elsewhere (musl,
macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

__all__ = ["release_free_memory"]

log = logging.getLogger(__name__)


def release_free_memory() -> bool:
    """Collect garbage and return free heap pages to the OS; True when glibc did it."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    released = bool(trim(0))
    log.debug("free heap returned to the OS: %s", released)
    return released
