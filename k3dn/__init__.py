"""K3DN reproducibility suite: dual-pixel defocus deblurring (Yang et al., CVPR 2023)."""

__version__ = "0.1.0"
