"""Accelerators: peak dense bfloat16 matmul throughput per chip and memory bandwidth, from the
vendors' published specifications (dense, i.e. without 2:4 structured sparsity)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  bf16_flops: float  # peak dense bfloat16 FLOP/s per chip
  hbm_bytes_per_s: float  # memory bandwidth per chip
  hbm_bytes: float  # memory per chip
  source: str


CHIPS = {
  # NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): BF16 Tensor Core 312 TFLOPS
  # (624 with sparsity), GPU memory bandwidth 2,039 GB/s.
  'a100': Chip('NVIDIA A100 SXM4 80GB', 312e12, 2.039e12, 80e9, 'nvidia.com A100 datasheet'),
  # NVIDIA H100 Tensor Core GPU datasheet (SXM5): BF16 Tensor Core 1,979 TFLOPS with
  # sparsity, i.e. 989 dense; 3.35 TB/s.
  'h100': Chip('NVIDIA H100 SXM5 80GB', 989e12, 3.35e12, 80e9, 'nvidia.com H100 datasheet'),
  # NVIDIA H200 datasheet: same Tensor Cores as H100 SXM (989 TFLOPS dense BF16), 4.8 TB/s.
  'h200': Chip('NVIDIA H200 SXM 141GB', 989e12, 4.8e12, 141e9, 'nvidia.com H200 datasheet'),
  # Google Cloud TPU v4 documentation: 275 TFLOPS (bf16) per chip, 32 GiB HBM2 at 1,200 GB/s.
  'tpu-v4': Chip('Google TPU v4', 275e12, 1.2e12, 32 * 2**30, 'cloud.google.com/tpu/docs/v4'),
  # Cloud TPU v5e documentation: 197 TFLOPS (bf16) per chip, 16 GiB HBM2 at 819 GB/s.
  'tpu-v5e': Chip('Google TPU v5e', 197e12, 819e9, 16 * 2**30, 'cloud.google.com/tpu/docs/v5e'),
  # Cloud TPU v5p documentation: 459 TFLOPS (bf16) per chip, 95 GiB HBM2e at 2,765 GB/s.
  'tpu-v5p': Chip('Google TPU v5p', 459e12, 2.765e12, 95 * 2**30, 'cloud.google.com/tpu/docs/v5p'),
}
