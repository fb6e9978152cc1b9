"""Published baselines re-implemented in PyTorch; importing this package registers every one."""
