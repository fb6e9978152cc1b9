"""K3DN networks; importing this package registers every K3DN variant and ablation."""
