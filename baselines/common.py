"""What every baseline wrapper shares: fitting an input to the network's size multiple.

That is :func:`k3dn.models.blocks.pad_to_multiple` (the suite's one size-fitting implementation), re-exported for
the wrappers: reflect-pad at the bottom/right, replicate where the image is too small to reflect. The official
test scripts crop to the multiple instead (a no-op on DPDD's 1120x1680); padding and cropping the output back
keeps every pixel for other sizes.
"""

from __future__ import annotations

from k3dn.models.blocks import pad_to_multiple

__all__ = ["pad_to_multiple"]
