"""The absl binaries of distill_v1 (installed as package `distill_v1_scripts`)."""
