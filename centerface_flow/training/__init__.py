"""Training: the loop and its settings, losses, data-parallel launch."""
