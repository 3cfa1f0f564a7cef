"""distill_v1.compression."""
