"""The blurry input as a method: the floor every deblurring method of a table must beat.

Registered as ``identity``. Its output is the combined (centre) view C of the dual-pixel pair, the image a
conventional camera would record; where a data set has none (the Pixel set, DDD-syn), ``k3dn predict`` forms
it as (L + R) / 2, the physical dual-pixel sum, exactly as every single-image model receives it. Scoring it
under a table's protocol says how much of a method's number is the input's own quality.
"""

from __future__ import annotations

from torch import nn

from k3dn.registry import register_model


class BlurryInput(nn.Module):
    input_views = ("center",)
    size_multiple = (1, 1)
    size_mode = "pad"

    def forward(self, batch: dict) -> dict:
        return {"output": batch["center"].clamp(0, 1)}


@register_model
def identity() -> BlurryInput:
    """The blurry input itself (the centre view, or (L+R)/2 where a data set has none)."""
    return BlurryInput()
