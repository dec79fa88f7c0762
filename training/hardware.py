"""What machine a run is on, in words: for model cards (training/model_card.py) and benchmark results
(bench/machine.py)."""
from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def detect_hardware() -> str:
    """The accelerator's name (CUDA) or the CPU model, and the core count, of this machine."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}, {os.cpu_count()} CPU cores"
    return f"{cpu_model()}, {os.cpu_count()} cores (CPU only)"
