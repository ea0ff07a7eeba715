"""Where and in what precision a model computes: device choice, bf16 policy, autocast."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..errors import UsageError

# On CPU, oneDNN's channels-last backward of a 1x1 strided convolution with fewer than this many
# input channels kills the process (segfault or abort; seen with torch 2.14.1 on an AVX2 CPU
# without AVX-512: tests/test_models.py::test_narrow_network_trains_on_cpu reproduces it).
CPU_CHANNELS_LAST_MIN_CHANNELS = 8


def memory_format(model: torch.nn.Module, device: torch.device | str) -> torch.memory_format:
    """channels-last (the faster convolutions on CPU and GPU), except for a network on CPU with a
    1x1 strided convolution narrower than CPU_CHANNELS_LAST_MIN_CHANNELS (e.g. PreAct ResNet-18
    below width 8), which computes in contiguous NCHW instead."""
    if torch.device(device).type == "cpu" and any(
            isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
            and m.in_channels < CPU_CHANNELS_LAST_MIN_CHANNELS for m in model.modules()):
        return torch.contiguous_format
    return torch.channels_last


def _row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _inputs_in(fmt: torch.memory_format, module: torch.nn.Module, args: tuple) -> tuple:
    x, *rest = args
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        if fmt == torch.contiguous_format:
            # A one-channel N x H x W x C batch permuted to N x C x H x W counts as contiguous but
            # keeps channels-last strides, from which a convolution infers channels-last: copy.
            if x.stride() != _row_major(tuple(x.shape)):
                x = x.clone(memory_format=torch.contiguous_format)
        else:
            x = x.contiguous(memory_format=fmt)
    return (x, *rest)


def place_model(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """The model on device in its memory format (memory_format), taking every input in that
    format whatever the caller passes (a convolution follows its input's format, so a
    channels-last batch would otherwise bring the crash back); returns the model."""
    import functools

    fmt = memory_format(model, device)
    model.to(device).to(memory_format=fmt)
    model.register_forward_pre_hook(functools.partial(_inputs_in, fmt))
    return model


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
