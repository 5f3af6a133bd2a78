"""harness.process_usage reads a live process's CPU time and memory, and 0 for a gone one."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from harness.process_usage import cpu_seconds, rss_mib


def test_a_busy_child_shows_cpu_time_and_memory_then_zero_once_gone() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass\ninput()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        used = 0.0
        for _ in range(100):
            used = cpu_seconds(child.pid)
            if used >= 0.2:
                break
            time.sleep(0.05)
        assert used >= 0.2
        assert 1 < rss_mib(child.pid) < 1024
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert cpu_seconds(child.pid) == 0.0 and rss_mib(child.pid) == 0.0
    assert cpu_seconds(None) == 0.0 and rss_mib(None) == 0.0
    assert cpu_seconds(os.getpid()) > 0
