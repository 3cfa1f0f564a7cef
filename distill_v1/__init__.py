"""distill_v1: knowledge distillation and model lightweighting in TF1-style graphs.

Importing the package does not import TensorFlow; modules that need it import
`distill_v1.compat`, which gives a one-line error when TensorFlow is missing.
"""

__version__ = "0.1.0"
