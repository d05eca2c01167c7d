"""station/memory.py: freed heap goes back to the OS (glibc), measured in /proc."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import gc
from station.memory import release_free_memory

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

garbage = [bytes(2000) for _ in range(30_000)]  # ~60 MiB of malloc blocks (not pymalloc)
peak = rss_kib()
keep = garbage[::100]  # a few survivors scattered through the arena
del garbage
gc.collect()
before = rss_kib()
released = release_free_memory()
after = rss_kib()
print(peak, before, after, released)
"""


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_heap_is_returned_to_the_os() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split()
    peak, before, after = (int(v) for v in out[:3])
    assert out[3] == "True"
    assert before > peak // 2  # glibc kept the freed pages mapped ...
    assert before - after > 20 * 1024  # ... and gave back tens of MiB of them
