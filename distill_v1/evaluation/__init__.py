"""distill_v1.evaluation."""
