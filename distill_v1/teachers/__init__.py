"""distill_v1.teachers."""
