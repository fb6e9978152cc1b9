"""Data sets: downloads, layout adapters that write manifests, and torch Datasets that read them."""
