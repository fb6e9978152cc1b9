"""Published baselines re-implemented in PyTorch, the checkpoint catalogue and Wiener deconvolution.

The network modules register themselves when imported; :mod:`k3dn.registry` imports every one listed in
``MODEL_MODULES``. Importing the package itself imports no model (and no torch), so the workflow can read the
checkpoint catalogue (:mod:`baselines.published`) cheaply on every Snakemake invocation.
"""

MODEL_MODULES = (
    "bambnet",
    "dddnet",
    "deeprft",
    "dinat_ir",
    "dpdnet",
    "drbnet",
    "grl",
    "identity",
    "ifan",
    "kpac",
    "lakdnet",
    "rdpd",
    "restormer",
    "wiener",
    "xin2021",
)
