"""A tiny dual-pixel deblurring network, written the way the suite's own models are (docs/DEVELOPING.md, Models).

The suite finds this module through the ``k3dn.models`` entry point of this package's ``pyproject.toml``; importing
it registers ``example_tiny_dp`` with :func:`k3dn.registry.register_model`, so ``create_model("example_tiny_dp")``,
``k3dn predict --model example_tiny_dp`` and the model contract test (``tests/test_models_contract.py``) reach it
like any built-in model.

Network: cat(L, R) -> two stride-2 3x3 convolutions (6 -> 16 -> 32 channels) -> two stride-2 4x4 transposed
convolutions back to full size -> a 3x3 convolution to a residual added to (L + R) / 2, the blurry combined view.
Its published container is ``torch.save({'epoch': int, 'state_dict': sd})`` with DataParallel's ``module.``
prefix on every key, as many published PyTorch checkpoints are; :func:`checkpoint_filter_fn` undoes both.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from k3dn.checkpoint import strip_prefix
from k3dn.registry import register_model

__all__ = ["TinyDP", "checkpoint_filter_fn", "example_tiny_dp"]


class TinyDP(nn.Module):
    # the contract's attributes: which views it reads, and the sizes its forward pass accepts
    input_views = ("left", "right")
    size_multiple = (4, 4)  # two stride-2 stages
    size_mode = "pad"

    def __init__(self, width: int = 16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(6, width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, batch: dict) -> dict:
        left, right = batch["left"], batch["right"]
        h, w = left.shape[-2:]
        if h % self.size_multiple[0] or w % self.size_multiple[1]:
            # k3dn.infer pads other sizes (size_mode); called directly, say what is needed
            raise ValueError(
                f"TinyDP: input {h}x{w} is not a multiple of {self.size_multiple[0]}x{self.size_multiple[1]}"
            )
        out = 0.5 * (left + right) + self.decoder(self.encoder(torch.cat([left, right], dim=1)))
        return {"output": out if self.training else out.clamp(0, 1)}


def checkpoint_filter_fn(state_dict: dict, model: nn.Module | None = None) -> dict:
    """The published container (``{'epoch', 'state_dict'}``, keys prefixed ``module.``) -> the module's state
    dict; the suite then loads it strictly (every tensor present, none extra, every shape equal)."""
    sd = state_dict.get("state_dict", state_dict) if isinstance(state_dict, dict) else None
    if not isinstance(sd, dict):
        raise TypeError(f"TinyDP checkpoint: expected a dict with 'state_dict', got {type(state_dict).__name__}")
    return strip_prefix(sd, "module.")


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def example_tiny_dp(**kw) -> TinyDP:
    """The example plugin's network; its published weights: the ``example_tiny_dp`` entry of the plugin's catalogue."""
    return TinyDP(**kw)
