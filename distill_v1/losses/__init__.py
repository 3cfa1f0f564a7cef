"""distill_v1.losses: pure loss functions returning LossOutput(loss, extra).

Modules: `hard` (true-label cross-entropy), `soft_target` (the article's
temperature-softened cross-entropy, times T**2), `distillation` (their
alpha-weighted sum), `feature` (FitNets hints, attention transfer).
"""

from distill_v1.losses import outputs as _outputs

LossOutput = _outputs.LossOutput
