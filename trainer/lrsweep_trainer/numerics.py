"""Portable numerics: CPU training whose results do not depend on which x86 CPU runs it.

A trial is deterministic for its seed on one machine, but another CPU picks other kernels
(AVX-512 or AVX2 code in ATen, MKL's per-CPU code paths, oneDNN's and NNPACK's JIT-compiled
convolutions) and rounds differently. Training amplifies that: the same seed and rate can end
at a validation loss twice as high on another machine. Portable numerics gives up the
CPU-specific kernels for ones that compute the same bits everywhere, for the same versions
of torch (and of the libraries that make the data):

- ATen's vectorized kernels at their baseline build (ATEN_CPU_CAPABILITY=default);
- MKL in its conditional-numerical-reproducibility mode (MKL_CBWR=COMPATIBLE);
- no oneDNN and no NNPACK: convolutions take ATen's own path (im2col and MKL's GEMM).

Both variables are read when torch first computes, not when it is imported, so setting them
here works as long as nothing has been computed yet; `use_portable_numerics` checks that.
MKL documents its COMPATIBLE mode as reproducible on Intel and AMD CPUs for a fixed number
of threads (the trainer uses 1 unless told otherwise); the tests check the whole by
imitating a CPU with fewer instruction sets. Slower (about 1.5x on the built-in
transformer); for benchmarks and for comparing runs across machines, not for speed. CUDA is
unaffected: this is about CPU results.
"""

from __future__ import annotations

import os

PORTABLE_ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


def use_portable_numerics() -> None:
    """Switch this process to kernels that give the same results on every x86 CPU.

    Call it before the first tensor computation; raises RuntimeError when it is too late
    (torch already chose its CPU kernels).
    """
    import torch  # here, so that reading PORTABLE_ENVIRONMENT does not load torch

    os.environ.update(PORTABLE_ENVIRONMENT)
    # What torch.backends.mkldnn.enabled and torch.backends.nnpack.set_flags set; those
    # wrappers are untyped, these are typed (and there since torch 1.x).
    torch._C._set_mkldnn_enabled(False)
    torch._C._set_nnpack_enabled(False)
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "DEFAULT":
        raise RuntimeError(
            f"portable numerics asked for after torch chose its {capability} CPU kernels: "
            "call use_portable_numerics() before any tensor computation, or set "
            + " ".join(f"{k}={v}" for k, v in PORTABLE_ENVIRONMENT.items())
            + " in the environment"
        )
