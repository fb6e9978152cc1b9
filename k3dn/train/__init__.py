"""See docs/DEVELOPING.md."""
