r"""The main job: from a big teacher to a small, verified model, with a report.

Usage:
  distill-v1-compress --preset=quick --output_dir=runs/quick
  distill-v1-compress --preset=full --output_dir=runs/full \
      --teacher_checkpoint=/work/runs/cnn_teacher
  distill-v1-compress --preset=quick --output_dir=runs/legacy \
      --teacher_graph=my_teacher.pb --teacher_input=input:0 \
      --teacher_output=scores:0 --teacher_input_scale=255 \
      --teacher_input_layout=flat

Stages (each in its own folder under --output_dir): teacher (trained here,
or --teacher_checkpoint / --teacher_graph) -> distill (the article's recipe:
soft targets at temperature T, GradientDescentOptimizer) -> prune
(structured thinning and/or gradual magnitude pruning, fine-tuned by
distillation) -> quantize -> export (frozen graph, SavedModel, TFLite float32,
dynamic range, float16, int8) -> verify (every file read back in a fresh
process by its real runtime). Rerunning the same command reuses finished
stages and resumes an interrupted one; a stage whose flags or inputs changed
is redone. The report is report.md, report.json and report.png in
--output_dir. Any flag overrides the preset; presets and flags can also come
from --flagfile.
"""

from absl import app
from absl import flags

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

# Presets: values for the flags below; a flag given explicitly wins.
PRESETS = {
    # The README demo: every stage in a few minutes on 2 cores.
    "quick": {
        "teacher_epochs": 3.0,
        "distill_epochs": 8.0,
        "target_sparsity": 0.5,
        "structured_fraction": 0.0,
        "prune_epochs": 2.0,
        "latency_repeats": 100,
    },
    # The published results (docs/results.md).
    "full": {
        "teacher_epochs": 30.0,
        # A thin cnn_teacher (215,370 parameters): cnn_student tops out near
        # 90.7% here, short of the 1.5-point target. Its recipe is the
        # teacher's (momentum 0.9, 0.02, cosine, weight decay 5e-4; plain
        # SGD at 0.05 reached 91.16% on the test set), T = 8, alpha = 0.5:
        # chosen on a 5,000-example validation split (docs/results.md).
        "student_model": "cnn_teacher",
        "student_layer_widths": "conv1=16,conv2=32,fc1=128",
        "temperature": 8.0,
        "alpha": 0.5,
        "distill_epochs": 30.0,
        "distill_optimizer": "momentum",
        "distill_learning_rate": 0.02,
        "distill_learning_rate_decay": "cosine",
        "distill_weight_decay": 5e-4,
        "target_sparsity": 0.5,
        "structured_fraction": 0.0,
        "prune_epochs": 4.0,
        "latency_repeats": 300,
    },
}

flags.DEFINE_enum("preset", "quick", sorted(PRESETS),
                  "quick: the README demo (minutes); full: the published "
                  "results (docs/results.md). Every flag overrides it.")
flags.DEFINE_string("output_dir", None,
                    "Where the stage folders, exports and report go.")
common_flags.define_data_flags()
flags.DEFINE_integer("seed", 0, "Seed of everything random.")
flags.DEFINE_integer("batch_size", 128, "Examples per training step.",
                     lower_bound=1)
flags.DEFINE_list(
    "skip", [],
    "Stages to skip: distill (the student is trained alone), prune, "
    "quantize, verify.")
flags.DEFINE_string("teacher_model", "cnn_teacher",
                    "Teacher trained here when no teacher is given.")
flags.DEFINE_string(
    "teacher_checkpoint", None,
    "Use this trained teacher (checkpoint prefix or training directory with "
    "model_spec.json) instead of training one.")
flags.DEFINE_string(
    "teacher_graph", None,
    "Use a legacy teacher: frozen GraphDef, SavedModel or TF1 checkpoint "
    "with .meta (checked against an allow-list, see SECURITY.md).")
flags.DEFINE_string("teacher_input", None,
                    "Input tensor or signature key of --teacher_graph.")
flags.DEFINE_string("teacher_output", None,
                    "Logits tensor or signature key of --teacher_graph.")
flags.DEFINE_float("teacher_input_scale", 1.0,
                   "Multiplies [0, 1] pixels for --teacher_graph (e.g. 255).")
flags.DEFINE_enum("teacher_input_layout", "nhwc", ["nhwc", "nchw", "flat"],
                  "Input layout --teacher_graph expects.")
flags.DEFINE_bool("allow_unsafe_teacher_ops", False,
                  "Load a --teacher_graph with ops outside the allow-list.")
flags.DEFINE_float("teacher_epochs", 30.0, "Epochs of a teacher trained here.")
flags.DEFINE_string("teacher_optimizer", "momentum",
                    "Optimizer of a teacher trained here.")
flags.DEFINE_float("teacher_learning_rate", 0.02,
                   "Learning rate of a teacher trained here.")
flags.DEFINE_string("teacher_learning_rate_decay", "cosine",
                    "Schedule of a teacher trained here.")
flags.DEFINE_float("teacher_weight_decay", 5e-4,
                   "Weight decay of a teacher trained here.")
flags.DEFINE_string("student_model", "cnn_student", "The student network.")
flags.DEFINE_string(
    "student_layer_widths", None,
    "Wider or narrower student: LAYER=WIDTH pairs, e.g. conv1=64,conv2=128 "
    "(cnn_student), fc1=400,fc2=400 (mlp_student).")
flags.DEFINE_float("student_width_multiplier", None,
                   "mobilenet_v1 student: width multiplier.")
flags.DEFINE_float("distill_epochs", 10.0, "Epochs of distillation.")
flags.DEFINE_string("distill_optimizer", "sgd",
                    "Distillation optimizer (the article's: sgd).")
flags.DEFINE_float("distill_learning_rate", 0.05,
                   "Distillation learning rate.")
flags.DEFINE_string("distill_learning_rate_decay", "none",
                    "Distillation learning-rate schedule.")
flags.DEFINE_float("distill_weight_decay", 0.0,
                   "L2 weight decay of the student's kernels while "
                   "distilling (0: none, the article's recipe).",
                   lower_bound=0.0)
flags.DEFINE_float("temperature", 4.0, "Softmax temperature T > 0.")
flags.DEFINE_float("alpha", 0.1, "Weight of the hard-label loss in [0, 1].")
flags.DEFINE_bool(
    "cached_logits", True,
    "Compute the teacher's logits once and distill from the cache (the "
    "teacher is then not run while the student trains).")
flags.DEFINE_float(
    "structured_fraction", 0.0,
    "Prune stage: fraction of filters / units removed by L1 norm (the "
    "network becomes physically smaller).")
flags.DEFINE_float(
    "target_sparsity", 0.5,
    "Prune stage: fraction of each kernel's weights zeroed by gradual "
    "magnitude pruning.")
flags.DEFINE_float("prune_epochs", 2.0,
                   "Epochs of fine-tuning (by distillation) while pruning.")
flags.DEFINE_float("prune_learning_rate", 0.02,
                   "Learning rate of the pruning fine-tune.")
flags.DEFINE_list("formats", ["frozen_graph", "saved_model", "float32",
                              "dynamic_range", "float16", "int8"],
                  "Export formats.")
flags.DEFINE_integer("latency_repeats", 200,
                     "Timed batch-1 calls per latency figure (median).",
                     lower_bound=1)
flags.mark_flag_as_required("output_dir")

def _layer_widths(text):
  from distill_v1 import errors  # pylint: disable=g-import-not-at-top
  widths = {}
  for item in [t for t in (text or "").split(",") if t.strip()]:
    name, _, value = item.partition("=")
    try:
      widths[name.strip()] = int(value)
    except ValueError:
      raise errors.ConfigError(
          "--student_layer_widths=%s: expected LAYER=WIDTH pairs such as "
          "conv1=64,conv2=128" % text) from None
  return widths


def compress_config():
  """The compress_lib config: preset values, overridden by given flags."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.pipeline import compress_lib
  # pylint: enable=g-import-not-at-top
  values = {}
  preset = PRESETS[FLAGS.preset]
  for name in list(preset) + [
      n for n in compress_lib.DEFAULTS if n in FLAGS]:
    if name not in FLAGS:
      continue
    values[name] = (getattr(FLAGS, name) if FLAGS[name].present or
                    name not in preset else preset[name])
  widths_text = values.pop("student_layer_widths", None)
  if FLAGS["student_layer_widths"].present:
    widths_text = FLAGS.student_layer_widths
  elif values.get("student_model") != preset.get("student_model",
                                                 values.get("student_model")):
    # The preset's widths belong to the preset's student, not to another
    # --student_model given with it.
    widths_text = None
  multiplier = values.pop("student_width_multiplier", None)
  if FLAGS["student_width_multiplier"].present:
    multiplier = FLAGS.student_width_multiplier
  options = {}
  if widths_text:
    options["layer_widths"] = _layer_widths(widths_text)
  if multiplier is not None:
    options["width_multiplier"] = multiplier
  values["student_options"] = options
  values["skip"] = tuple(values.get("skip") or ())
  values["formats"] = tuple(values.get("formats") or ())
  return compress_lib.make_config(**values)


def compress():
  """Loads the data and runs the pipeline."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.data import datasets
  from distill_v1.pipeline import compress_lib
  # pylint: enable=g-import-not-at-top
  config = compress_config()
  compress_lib.validate_config(config)  # Before any work or file.
  splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir,
                                 validation_size=FLAGS.validation_size,
                                 seed=FLAGS.seed)
  flags_used = {name: getattr(FLAGS, name) for name in sorted(
      set(compress_lib.DEFAULTS) | {"preset", "student_layer_widths",
                                    "student_width_multiplier"})
                if name in FLAGS}
  result = compress_lib.run(config, splits, flags_used=dict(
      flags_used, resolved=dict(config)))
  paths = result["report"]
  with open(paths["markdown"], encoding="utf-8") as f:
    print("\n" + f.read())
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("compress", compress)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
