"""Machine and version facts recorded with every benchmark result (docs/evaluation.md section 3)."""
from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from training.hardware import cpu_model


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, GPU (if any), Python/torch/numpy versions, git commit, UTC time, GLIBC_TUNABLES."""
    import numpy
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "memory_gib": round(mem_gb, 1), "gpu": gpu,
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "commit": commit, "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def machine_slug(cpu: Optional[str] = None) -> str:
    """A file-name form of a CPU or GPU model: 'AMD EPYC 7B13' -> 'amd-epyc-7b13'."""
    words = re.findall(r"[a-z0-9]+", (cpu or cpu_model()).lower())
    return "-".join(w for w in words if w not in ("processor", "cpu", "r", "tm"))[:32] or "unknown"


def wall_times(fn: Callable[[], Any], repeats: int, warm_up: bool = True) -> list[float]:
    """Wall seconds of `repeats` calls of `fn`, after one untimed call when `warm_up` (oneDNN picks its kernels
    on the first call of a shape; skip it where an earlier call has run the shapes already)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of `repeats` calls of `fn`, after one untimed warm-up call."""
    return statistics.median(wall_times(fn, repeats))


def matmul_gflops(repeats: int = 3) -> float:
    """fp32 GFLOP/s of a 4096 x 4096 matmul with the current torch threads (median of `repeats` after a
    warm-up): the dense peak that benchmarks take fractions of, measured in the same run because the machine
    is shared (docs/design.md section 9)."""
    import torch

    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    return 2 * 4096**3 / median_time(lambda: a @ b, repeats) / 1e9
