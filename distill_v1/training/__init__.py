"""distill_v1.training."""
