"""Published baselines re-implemented in PyTorch; importing this package registers every one."""

from . import bambnet, drbnet, restormer  # noqa: F401  (registration side effects)
