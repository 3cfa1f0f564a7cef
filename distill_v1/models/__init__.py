"""distill_v1.models."""
