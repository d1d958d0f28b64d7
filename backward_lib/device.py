"""The device a computation ran on, in words (for run cards and benchmarks)."""

from __future__ import annotations

import platform

import torch

__all__ = ["device_name"]


def device_name(device: str | torch.device = "cpu") -> str:
    """A readable name: the GPU's model, or the CPU with its threads and the vector kernels
    torch dispatches to (``ATEN_CPU_CAPABILITY`` pins them; see ``companion.numerics``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    kernels = torch.backends.cpu.get_cpu_capability()
    cpu = platform.processor() or platform.machine()
    return f"cpu: {cpu}, {torch.get_num_threads()} threads, {kernels} kernels"
