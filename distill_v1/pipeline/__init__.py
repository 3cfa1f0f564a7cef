"""distill_v1.pipeline: the main job, from a teacher to a verified small model."""
