"""How a catalog GPU appears to a cluster and to Docker: device-plugin resource, node label, runtime class.

Node labels are the ones GPU Feature Discovery (NVIDIA GPU Operator) and the AMD GPU Operator's node labeller
set: `nvidia.com/gpu.product` is the product name as nvidia-smi prints it with spaces turned into dashes.
Several values per slug cover the SXM and PCIe boards the catalog folds into one slug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from apps.manifests.request import ManifestError
from workers.engines import EngineDefinition

AcceleratorKind = Literal["nvidia", "amd", "cpu"]

NVIDIA_PRODUCT_LABEL = "nvidia.com/gpu.product"
AMD_PRODUCT_LABEL = "amd.com/gpu.product-name"

NVIDIA_PRODUCTS: dict[str, tuple[str, ...]] = {
    "h100-sxm": ("NVIDIA-H100-80GB-HBM3",),
    "h100-pcie": ("NVIDIA-H100-PCIe",),
    "h100-nvl": ("NVIDIA-H100-NVL",),
    "h200": ("NVIDIA-H200",),
    "b200": ("NVIDIA-B200",),
    "gb200": ("NVIDIA-GB200",),
    "a100-80gb": ("NVIDIA-A100-SXM4-80GB",),
    # nvidia-smi prints "NVIDIA A100 80GB PCIe" and "NVIDIA RTX A6000" (XiongjieDai/GPU-Benchmarks-on-LLM-Inference
    # notebooks at aa72e0ec, "LLaMA 2/Professional GPUs/A100_v2.ipynb" and "A6000_2_v2.ipynb")
    "a100-80gb-pcie": ("NVIDIA-A100-80GB-PCIe",),
    "a100-40gb": ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"),
    "l40s": ("NVIDIA-L40S",),
    "l40": ("NVIDIA-L40",),
    "l4": ("NVIDIA-L4",),
    "a10g": ("NVIDIA-A10G",),
    "a10": ("NVIDIA-A10",),
    "t4": ("Tesla-T4",),
    "rtx-4090": ("NVIDIA-GeForce-RTX-4090",),
    "rtx-6000-ada": ("NVIDIA-RTX-6000-Ada-Generation",),
    "rtx-a6000": ("NVIDIA-RTX-A6000",),
}
AMD_PRODUCTS: dict[str, tuple[str, ...]] = {
    "mi300x": ("AMD_Instinct_MI300X_OAM",),
    "mi325x": ("AMD_Instinct_MI325X_OAM", "AMD_Instinct_MI325_OAM"),
}


@dataclass(frozen=True)
class Accelerator:
    kind: AcceleratorKind
    count: int  # devices per replica
    resource: str | None  # device-plugin resource name
    node_label: str | None
    node_values: tuple[str, ...]
    runtime_class: str | None

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"


def accelerator_for(gpu_slug: str, count: int) -> Accelerator:
    if gpu_slug == "cpu":
        return Accelerator("cpu", 0, None, None, (), None)
    if gpu_slug in NVIDIA_PRODUCTS:
        return Accelerator(
            "nvidia", count, "nvidia.com/gpu", NVIDIA_PRODUCT_LABEL, NVIDIA_PRODUCTS[gpu_slug], "nvidia"
        )
    if gpu_slug in AMD_PRODUCTS:
        # The AMD device plugin needs no runtime class: it mounts /dev/kfd and /dev/dri itself.
        return Accelerator("amd", count, "amd.com/gpu", AMD_PRODUCT_LABEL, AMD_PRODUCTS[gpu_slug], None)
    raise ManifestError(f"no node label known for GPU {gpu_slug!r}; add it to apps/manifests/hardware.py")


def image_for(definition: EngineDefinition, kind: AcceleratorKind, override: str | None) -> str:
    """The pinned release's image for these accelerators (workers/release_data/engines.json)."""
    if override:
        return override
    kind_key = {"nvidia": "cuda", "amd": "rocm", "cpu": "cpu"}[kind]
    image = definition.images.get(kind_key)
    if image is None:
        published = ", ".join(definition.images) or "none"
        raise ManifestError(
            f"{definition.display_name} {definition.version} publishes no {kind_key.upper()} image "
            f"(it publishes: {published}); pass an image explicitly"
        )
    return image
