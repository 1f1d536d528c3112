"""Which precision a device really runs fast: bf16 only where the hardware has it natively.

A bf16 autocast on a CPU without native bf16 (no AVX-512 BF16 / AMX; e.g. AVX2-only)
falls back to emulated kernels: a 256x1024 @ 1024x1024 matmul takes ~720 ms in bf16
against ~6 ms in fp32 on a 2-core AVX2 machine, and a whole Stable CRL step ~100x longer.
So ``bf16=true`` is a request: it is honoured where torch reports native support
(``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` on CPU, ``torch.cuda.is_bf16_supported()``
on CUDA) and otherwise the run stays in fp32 and says so in one line.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PrecisionInfo:
    device: str
    bf16_native: bool
    detail: str  # e.g. "CPU capability AVX2, oneDNN bf16 not native"


def cpu_capability() -> str:
    """torch's CPU kernel path: "AVX512", "AVX2", "DEFAULT", ... ("unknown" on old torch)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover - torch without the query
        return "unknown"


def _cpu_bf16_native() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - torch built without oneDNN
        return False


def precision_info(device: torch.device | str) -> PrecisionInfo:
    device = torch.device(device)
    if device.type == "cuda":
        native = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        name = torch.cuda.get_device_name(device) if torch.cuda.is_available() else "no CUDA device"
        return PrecisionInfo(str(device), native, f"{name}, bf16 {'native' if native else 'not native'}")
    if device.type == "cpu":
        native = _cpu_bf16_native()
        return PrecisionInfo("cpu", native, f"CPU capability {cpu_capability()}, "
                                            f"oneDNN bf16 {'native' if native else 'not native (emulated)'}")
    return PrecisionInfo(str(device), False, f"{device.type}: bf16 not checked, fp32 used")


def bf16_supported(device: torch.device | str) -> bool:
    """True when bf16 autocast on `device` runs native kernels (faster than fp32, not ~100x slower)."""
    return precision_info(device).bf16_native


def resolve_bf16(requested: bool, device: torch.device | str) -> tuple[bool, str | None]:
    """(use_bf16, message): bf16 only if requested and native on `device`; the message says why
    a request was not honoured (None when nothing needs saying)."""
    if not requested:
        return False, None
    info = precision_info(device)
    if info.bf16_native:
        return True, None
    return False, (f"bf16 requested but {info.device} has no native bf16 ({info.detail}): training in fp32, "
                   f"because emulated bf16 runs many times slower")


def precision_name(use_bf16: bool) -> str:
    return "bf16 autocast" if use_bf16 else "fp32"
