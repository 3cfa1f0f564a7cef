"""distill_v1.data."""
