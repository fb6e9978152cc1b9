"""Physically based synthetic dual-pixel (DP) data: thin-lens optics, half-aperture PSFs, layered rendering
with occlusion, the suite's embedded scenes and data set writer, and regeneration of DDD-syn and RDPD.

Modules: :mod:`~k3dn.synth.optics`, :mod:`~k3dn.synth.psf`, :mod:`~k3dn.synth.render`,
:mod:`~k3dn.synth.scenes`, :mod:`~k3dn.synth.dataset`, :mod:`~k3dn.synth.ddd_syn`, :mod:`~k3dn.synth.rdpd`,
:mod:`~k3dn.synth.commands` (``k3dn synth ...``).
"""

from k3dn.synth.optics import signed_coc_px
from k3dn.synth.psf import half_aperture_psfs
from k3dn.synth.render import render_dp, render_layers

__all__ = ["half_aperture_psfs", "render_dp", "render_layers", "signed_coc_px"]
