"""Where and in what precision a model computes: device choice, bf16 policy, autocast."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..errors import UsageError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}' (use auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available")
    return dev


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere it is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def cuda_has_native_bf16(device: torch.device) -> bool:
    """bf16 tensor cores start with compute capability 8.0 (Ampere). torch.cuda.is_bf16_supported()
    also admits older GPUs (V100, T4) where bf16 is emulated and slower than fp32."""
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def choose_precision(name: str, device: torch.device) -> tuple[str, str]:
    """(precision, why): the precision to run in and the reason, recorded in each run's config."""
    if name != "auto":
        return name, f"asked for ({name})"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if cuda_has_native_bf16(device):
            return "bf16", f"auto: CUDA compute capability {major}.{minor} computes bf16 natively"
        return "fp32", f"auto: CUDA compute capability {major}.{minor} < 8.0 only emulates bf16"
    if device.type == "cpu":
        if cpu_has_bf16():
            return "bf16", "auto: the CPU has AVX512-BF16 or AMX"
        return "fp32", "auto: the CPU has no native bf16 (AVX512-BF16 or AMX)"
    return "fp32", f"auto: no bf16 policy for device type {device.type}"


def resolve_precision(name: str, device: torch.device) -> str:
    return choose_precision(name, device)[0]


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_backends(device: torch.device) -> dict:
    """Apply robustmix's backend policy for device and return it, as run configs record it.

    On CUDA: cuDNN autotuning on (the input shapes are fixed, so the search pays once), and fp32
    means IEEE fp32: TF32 is off for matmuls and convolutions (PyTorch leaves it on for
    convolutions by default), so an fp32 run or attack computes the same on every GPU generation;
    the speed of Ampere and later comes from bf16 autocast (`--precision auto`). Dropout there
    is the fused kernel of F.dropout, elsewhere a torch.rand mask (same law, see models.py).
    """
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if cuda else None,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "cuda_version": torch.version.cuda if cuda else None,
        "dropout": "F.dropout (fused CUDA kernel)" if cuda else "torch.rand mask",
    }
