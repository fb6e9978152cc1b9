"""K3DN networks; importing this package registers every K3DN variant and ablation."""

from . import k3dn  # noqa: F401  (registers k3dn_tiny, k3dn_lightweight, k3dn_large and their *_single variants)
from .blocks import fit_to_multiple, restore_from_multiple, to_channels_last  # noqa: F401
