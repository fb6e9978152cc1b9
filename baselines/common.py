"""What every baseline wrapper shares: fitting an input to the network's size multiple."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, mult: int | tuple[int, int]) -> torch.Tensor:
    """Pad bottom/right to a multiple of ``mult``; reflect, or replicate where the image is too small to reflect.

    The official test scripts crop to the multiple instead (a no-op on DPDD's 1120x1680); padding and cropping
    the output back keeps every pixel for other sizes.
    """
    mh, mw = (mult, mult) if isinstance(mult, int) else mult
    h, w = x.shape[-2:]
    ph, pw = (-h) % mh, (-w) % mw
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    return x
