"""AlexNet-LPIPS v0.1 (Zhang et al. 2018) as a small in-repo module: no torchvision, no lpips import.

What it computes (the DPDD convention, datasets.md §6): inputs in [0, 1] are mapped to [-1, 1] (lpips'
``normalize=True``), shifted/scaled by lpips' fixed ScalingLayer (shift ``[-.030, -.088, -.188]``, scale
``[.458, .448, .450]``), passed through AlexNet's ``features``; the ReLU outputs after conv1..conv5
(64, 192, 384, 256, 256 channels) are unit-normalised over channels (eps 1e-10), squared differences are
weighted by the five 1x1 linear heads, averaged over space and summed over layers.

State-dict key names (strict):

* backbone: torchvision's ``features.{0,3,6,8,10}.{weight,bias}`` (the ``classifier.*`` tensors of the
  torchvision file are ignored);
* heads: lpips' ``lin{0..4}.model.1.weight`` (shape ``(1, C, 1, 1)``).

Weights come from files only, never a download:

* backbone ``alexnet-owt-7be5be79.pth`` (torchvision, 233 MB; the ``7be5be79`` is its sha256 prefix and is
  checked): ``$K3DN_LPIPS_ALEXNET``, else ``<weights>/lpips/alexnet-owt-7be5be79.pth``, else torch hub's
  cache ``<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth``;
* heads v0.1 ``alex.pth`` (from the lpips 0.1.4 wheel, ``lpips/weights/v0.1/alex.pth``, 6 KB, sha256
  ``df73285e...``, checked): ``$K3DN_LPIPS_LIN``, else ``<weights>/lpips/v0.1/alex.pth``, else the file
  inside an installed ``lpips`` package (located without importing it).

``<weights>`` is ``$K3DN_WEIGHTS_DIR`` (skipped when unset: the package never looks beside its own source; the
workflow passes both files to ``k3dn evaluate --lpips-backbone/--lpips-lin``). If a file is missing or fails its
checksum, :class:`LPIPSScorer` returns NaN and states the reason (printed once to stderr, and available as
``scorer.reason`` for a results column). Never a made-up number.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
from pathlib import Path

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_SHA256_PREFIX = "7be5be79"
LIN_FILE = "alex.pth"
LIN_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"  # lpips 0.1.4 v0.1/alex.pth
CHANNELS = (64, 192, 384, 256, 256)
_TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs after conv1..conv5 in torchvision's alexnet.features


class LPIPSWeightsError(RuntimeError):
    pass


def _alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet ``features`` layout (same indices, so the same state-dict keys)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class _Lin(nn.Module):
    """lpips' NetLinLayer: ``model = Sequential(Dropout, Conv2d(C, 1, 1, bias=False))`` -> ``model.1.weight``."""

    def __init__(self, c: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, kernel_size=1, stride=1, padding=0, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    """AlexNet-LPIPS v0.1. ``forward(x, y)`` takes ``(B, 3|1, H, W)`` in [0, 1] and returns ``(B,)``.

    Single-channel inputs are replicated to RGB. Built with random weights; load real ones with
    :func:`load_lpips` (or ``load_state_dict`` with the documented key names).
    """

    def __init__(self):
        super().__init__()
        self.features = _alexnet_features()
        for i, c in enumerate(CHANNELS):
            self.add_module(f"lin{i}", _Lin(c))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def _taps(self, x):
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
                if len(out) == len(_TAPS):
                    break
        return out

    def forward(self, x, y, normalize: bool = True):
        if x.shape != y.shape or x.ndim != 4:
            raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        if normalize:  # [0, 1] -> [-1, 1]
            x, y = 2 * x - 1, 2 * y - 1
        fx = self._taps((x - self.shift) / self.scale)
        fy = self._taps((y - self.shift) / self.scale)
        total = 0
        for i, (a, b) in enumerate(zip(fx, fy)):
            a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{i}")((a - b) ** 2).mean(dim=(2, 3))
        return total.view(-1)


# ----------------------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------------------


def weights_dir() -> Path | None:
    """``$K3DN_WEIGHTS_DIR``, or None when it is not set."""
    d = os.environ.get("K3DN_WEIGHTS_DIR")
    return Path(d) if d else None


def _candidates_backbone() -> list[Path]:
    c = []
    if os.environ.get("K3DN_LPIPS_ALEXNET"):
        return [Path(os.environ["K3DN_LPIPS_ALEXNET"])]
    if weights_dir() is not None:
        c.append(weights_dir() / "lpips" / ALEXNET_FILE)
    try:
        c.append(Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE)
    except Exception:  # pragma: no cover
        pass
    return c


def _candidates_lin() -> list[Path]:
    if os.environ.get("K3DN_LPIPS_LIN"):
        return [Path(os.environ["K3DN_LPIPS_LIN"])]
    c = [weights_dir() / "lpips" / "v0.1" / LIN_FILE] if weights_dir() is not None else []
    try:
        spec = importlib.util.find_spec("lpips")  # locates the package without importing it (needs torchvision)
        if spec is not None and spec.submodule_search_locations:
            c += [Path(p) / "weights" / "v0.1" / LIN_FILE for p in spec.submodule_search_locations]
    except (ImportError, ValueError):  # pragma: no cover
        pass
    return c


def find_weights() -> tuple[Path, Path]:
    """The (backbone, heads) files; raises :class:`LPIPSWeightsError` saying what was looked for."""
    found = []
    for what, cands in (("AlexNet backbone", _candidates_backbone()), ("LPIPS v0.1 heads", _candidates_lin())):
        hit = next((p for p in cands if p.is_file()), None)
        if hit is None:
            where = ", ".join(map(str, cands)) or "nothing to look at: pass the files or set $K3DN_WEIGHTS_DIR"
            raise LPIPSWeightsError(f"{what} weights not found (looked at: {where})")
        found.append(hit)
    return found[0], found[1]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def state_dict_from_files(backbone: Path, lin: Path, verify: bool = True) -> dict:
    """Merge torchvision's ``features.*`` and lpips' ``lin*`` tensors into one state dict for :class:`LPIPS`."""
    from k3dn.checkpoint import read_foreign

    if verify:
        got = _sha256(backbone)
        if not got.startswith(ALEXNET_SHA256_PREFIX):
            raise LPIPSWeightsError(
                f"{backbone}: sha256 {got[:12]}... does not start with {ALEXNET_SHA256_PREFIX} "
                f"(not torchvision's {ALEXNET_FILE})"
            )
        got = _sha256(lin)
        if got != LIN_SHA256:
            raise LPIPSWeightsError(
                f"{lin}: sha256 {got[:12]}... is not lpips 0.1.4's v0.1 alex.pth ({LIN_SHA256[:12]}...)"
            )
    bb = read_foreign(backbone)
    ln = read_foreign(lin)
    if not isinstance(bb, dict) or not isinstance(ln, dict):
        raise LPIPSWeightsError(f"{backbone} / {lin}: expected state dicts")
    sd = {k: v for k, v in bb.items() if k.startswith("features.")}
    sd.update(ln)
    return sd


def load_lpips(device="cpu", backbone=None, lin=None, verify: bool = True) -> LPIPS:
    """Build :class:`LPIPS` with real weights (files found by :func:`find_weights` unless given)."""
    from k3dn.checkpoint import load_state_dict_strict

    if backbone is None or lin is None:
        fb, fl = find_weights()
        backbone, lin = backbone or fb, lin or fl
    model = LPIPS()
    load_state_dict_strict(
        model, state_dict_from_files(Path(backbone), Path(lin), verify), source=f"{backbone} + {lin}"
    )
    return model.to(device).eval()


_PRINTED: set[str] = set()


class LPIPSScorer:
    """LPIPS for the evaluation loop: a number with real weights, NaN with a stated reason without them.

    ``scorer(pred, target)`` takes ``(H, W, C)`` numpy images (or ``(B, C, H, W)`` tensors) in [0, 1] and
    returns a float (or a ``(B,)`` tensor). ``scorer.reason`` is ``""`` when weights are loaded.
    """

    def __init__(self, device="cpu", backbone=None, lin=None, model: LPIPS | None = None, verify: bool = True):
        self.device = torch.device(device)
        self.reason = ""
        self.model = model
        self.weights = ""
        if self.model is None:
            try:
                self.model = load_lpips(self.device, backbone, lin, verify=verify)
                found_backbone, found_lin = (backbone, lin) if backbone and lin else find_weights()
                self.weights = f"{Path(found_backbone).name}+{Path(found_lin).name}"
            except (LPIPSWeightsError, FileNotFoundError, RuntimeError) as e:
                self.model = None
                self.reason = f"LPIPS not computed: {e}"
                if self.reason not in _PRINTED:
                    _PRINTED.add(self.reason)
                    log.warning(self.reason)
        else:
            self.model = self.model.to(self.device).eval()

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, pred, target):
        if isinstance(pred, torch.Tensor):
            if self.model is None:
                return torch.full((pred.shape[0],), math.nan)
            return self.model(pred.to(self.device, torch.float32), target.to(self.device, torch.float32)).cpu()
        if self.model is None:
            return math.nan
        from k3dn.metrics import to_tensor

        x = to_tensor(pred, self.device, torch.float32)
        y = to_tensor(target, self.device, torch.float32)
        return float(self.model(x, y).item())
