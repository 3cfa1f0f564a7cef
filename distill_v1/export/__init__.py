"""distill_v1.export."""
