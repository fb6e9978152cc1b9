"""Training: the K3DN two-stage recipe. ``k3dn.train.loop.train(cfg, out)`` with ``cfg`` from
``k3dn.train.config.load_config``; see docs/DEVELOPING.md. (Nothing is imported here so that ``k3dn --help``
stays fast.)"""
