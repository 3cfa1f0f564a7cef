"""distill_v1.losses."""
