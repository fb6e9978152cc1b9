"""Published baselines re-implemented in PyTorch; importing this package registers every one."""

from . import bambnet, dddnet, deeprft, dpdnet, drbnet, ifan, kpac, rdpd, restormer, wiener  # noqa: F401  (registration)
