r"""Distills a teacher (or an ensemble of teachers) into a student.

Usage:
  distill-v1-distill --model=cnn_student --train_dir=/tmp/cnn_distilled \
      --teacher_checkpoint=/tmp/cnn_teacher --temperature=4 --alpha=0.1 \
      --learning_rate=0.05 --epochs=10

The student is --model; it is trained with the article's recipe (plain
GradientDescentOptimizer by default) on alpha * hard + (1 - alpha) * T**2 *
soft, where the soft loss is tf.compat.v1.losses.softmax_cross_entropy between
softmax(teacher_logits / T) and student_logits / T. The teacher is restored
from --teacher_checkpoint (a prefix or a training directory), is never trained
and is not saved into the student's checkpoints. Comma-separated
--teacher_checkpoint (and --teacher_model) lists form an ensemble. Rerunning
the same command resumes.
"""

from absl import app
from absl import flags

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

common_flags.define_training_flags(default_model="cnn_student")
common_flags.define_pruning_flags(prefix="prune_")
common_flags.define_cluster_flags()
flags.DEFINE_list(
    "teacher_checkpoint", [],
    "Teacher checkpoint(s): a prefix or a training directory (its latest "
    "checkpoint); a comma-separated list forms an ensemble.")
flags.DEFINE_list(
    "teacher_model", [],
    "Model-zoo name of each teacher, in the order of --teacher_checkpoint. "
    "Default: read from model_spec.json in each checkpoint's directory.")
flags.DEFINE_string(
    "teacher_graph", None,
    "A legacy teacher you cannot retrain, instead of --teacher_checkpoint: "
    "a frozen GraphDef (.pb/.pbtxt), a SavedModel directory (TF1 or TF2), "
    "or a TF1 checkpoint with its .meta graph. Its ops are checked against "
    "an allow-list before anything in it runs (see SECURITY.md).")
flags.DEFINE_string(
    "teacher_input", None,
    "Input tensor of --teacher_graph (e.g. 'images:0'), or a SavedModel "
    "signature input key. Default: the only input.")
flags.DEFINE_string(
    "teacher_output", None,
    "Logits tensor of --teacher_graph, or a SavedModel signature output key. "
    "Default: 'logits' if present, else the only output.")
flags.DEFINE_float(
    "teacher_input_scale", 1.0,
    "Multiplies our [0, 1] pixels before they reach --teacher_graph (255 for "
    "a teacher trained on 0-255 pixels).", lower_bound=0.0)
flags.DEFINE_enum(
    "teacher_input_layout", "nhwc", ["nhwc", "nchw", "flat"],
    "Layout --teacher_graph expects: nhwc (ours), nchw, or flat [N, H*W*C].")
flags.DEFINE_bool(
    "allow_unsafe_teacher_ops", False,
    "Load a --teacher_graph whose ops are outside the allow-list (file or "
    "network I/O, Python calls). Only for files you trust: a model file is "
    "a program.")
flags.DEFINE_float(
    "temperature", 4.0,
    "Softmax temperature T > 0 of the soft targets; larger is smoother.")
flags.DEFINE_float(
    "alpha", 0.1,
    "Weight of the hard-label loss in [0, 1]; the soft loss gets 1 - alpha.")
flags.DEFINE_bool(
    "scale_soft_loss", True,
    "Multiply the soft loss by T**2 (Hinton et al. 2015) so its gradients "
    "keep their scale as T changes; --noscale_soft_loss turns it off.")
flags.DEFINE_bool(
    "teacher_in_input", True,
    "Online distillation: run the frozen teachers inside the tf.data input "
    "pipeline, so the next batches' teacher logits are computed while the "
    "student trains on this batch (same logits, faster). Feature "
    "distillation and cluster runs keep the teacher in the training step; "
    "--noteacher_in_input does so always.")

flags.DEFINE_string(
    "teacher_logits_cache", None,
    "Cached (offline) distillation: an .npz file holding the teachers' "
    "logits over the training set. Computed on the first run (with a "
    "fingerprint of the teachers and the data), reused later, refused when "
    "stale; the teacher is then never run during training.")

flags.DEFINE_list(
    "hint_end_points", [],
    "FitNets hint: STUDENT_END_POINT:TEACHER_END_POINT, e.g. "
    "conv2:conv2; the student's feature is regressed onto the teacher's "
    "through a learned 1x1 (or linear) adapter. Needs --hint_weight > 0.")
flags.DEFINE_float("hint_weight", 0.0,
                   "Weight of the hint loss in the total (0 = off).",
                   lower_bound=0.0)
flags.DEFINE_list(
    "attention_end_points", [],
    "Attention transfer (Zagoruyko & Komodakis 2017): comma-separated "
    "STUDENT:TEACHER end-point pairs, e.g. conv1:conv1,conv2:conv2. Needs "
    "--attention_weight > 0.")
flags.DEFINE_float("attention_weight", 0.0,
                   "Weight of the attention-transfer loss (0 = off).",
                   lower_bound=0.0)
flags.DEFINE_bool(
    "feature_resize", False,
    "Resize student features bilinearly to the teacher's height and width "
    "when they differ (otherwise a size mismatch is an error).")

flags.DEFINE_list(
    "omit_classes", [],
    "Classes (integer labels) left out of the transfer set, as in Hinton et "
    "al.'s 'omitted 3s' experiment: the student never sees their examples "
    "and learns them only from the soft targets of the other classes.")
flags.DEFINE_string(
    "bias_correction", None,
    "After training, add per-class offsets to the student's logits bias: "
    "'learn' fits them on the validation split (needs --validation_size), "
    "or CLASS:OFFSET,... sets them (Hinton et al. used 3:3.5). Writes "
    "<train_dir>/bias_corrected/ and prints per-class accuracy before and "
    "after.")

flags.register_validator("temperature", lambda t: t > 0,
                         message="--temperature must be > 0")
flags.register_validator("alpha", lambda a: 0.0 <= a <= 1.0,
                         message="--alpha must be in [0, 1]")
flags.register_multi_flags_validator(
    ["teacher_checkpoint", "teacher_graph"],
    lambda f: bool(f["teacher_checkpoint"]) != bool(f["teacher_graph"]),
    message="give exactly one of --teacher_checkpoint (one or more, "
    "comma-separated) and --teacher_graph")
flags.register_multi_flags_validator(
    ["teacher_checkpoint", "teacher_model"],
    lambda f: not f["teacher_model"] or (
        len(f["teacher_model"]) == len(f["teacher_checkpoint"])),
    message="--teacher_model and --teacher_checkpoint must list the same "
    "number of teachers")
# Checked here, not after training: the offsets are fitted at the very end.
flags.register_multi_flags_validator(
    ["bias_correction", "validation_size"],
    lambda f: f["bias_correction"] != "learn" or f["validation_size"] > 0,
    message="--bias_correction=learn fits the offsets on the validation "
    "split: give --validation_size > 0")


def _pairs(values, flag_name):
  from distill_v1 import errors  # pylint: disable=g-import-not-at-top
  pairs = []
  for value in values:
    parts = value.split(":")
    if len(parts) != 2 or not all(parts):
      raise errors.ConfigError(
          "--%s=%s: expected STUDENT_END_POINT:TEACHER_END_POINT" %
          (flag_name, value))
    pairs.append(tuple(parts))
  return pairs


def feature_terms():
  """FeatureTerms from the --hint_* and --attention_* flags."""
  # pylint: disable=g-import-not-at-top
  from distill_v1 import errors
  from distill_v1.training import distillation
  # pylint: enable=g-import-not-at-top
  terms = []
  for kind in ("hint", "attention"):
    points = getattr(FLAGS, kind + "_end_points")
    weight = getattr(FLAGS, kind + "_weight")
    if bool(points) != (weight > 0):
      raise errors.ConfigError(
          "--%s_end_points and --%s_weight > 0 go together" % (kind, kind))
    if points:
      terms.append(distillation.FeatureTerm(
          kind, _pairs(points, kind + "_end_points"), weight))
  if terms and FLAGS.teacher_logits_cache:
    raise errors.ConfigError(
        "feature distillation needs the teacher's features: drop "
        "--teacher_logits_cache")
  return terms


def omit_classes(splits):
  """Removes the --omit_classes examples from the transfer (training) set."""
  # pylint: disable=g-import-not-at-top
  import numpy as np
  from distill_v1 import errors
  # pylint: enable=g-import-not-at-top
  if not FLAGS.omit_classes:
    return splits
  try:
    omitted = sorted(set(int(c) for c in FLAGS.omit_classes))
  except ValueError:
    raise errors.ConfigError("--omit_classes takes integer labels, got %s" %
                             ",".join(FLAGS.omit_classes)) from None
  bad = [c for c in omitted if not 0 <= c < splits.num_classes]
  if bad or len(omitted) >= splits.num_classes:
    raise errors.ConfigError(
        "--omit_classes=%s: each class must be in [0, %d) and at least one "
        "class must remain" % (",".join(FLAGS.omit_classes),
                               splits.num_classes))
  keep = ~np.isin(splits.train_labels, omitted)
  print("omitting classes %s: %d of %d training examples remain" %
        (", ".join(splits.class_names[c] for c in omitted), int(keep.sum()),
         len(keep)))
  return splits._replace(train_images=splits.train_images[keep],
                         train_labels=splits.train_labels[keep])


def correct_biases(student_fn, splits, spec):
  """Runs --bias_correction on the trained student and prints the effect."""
  # pylint: disable=g-import-not-at-top
  import os
  from distill_v1 import fileio
  from distill_v1.training import bias_correction
  from distill_v1 import checkpoints
  # pylint: enable=g-import-not-at-top
  prefix = checkpoints.resolve_checkpoint(FLAGS.train_dir)
  out_dir = os.path.join(FLAGS.train_dir, "bias_corrected")
  report = bias_correction.correct(
      student_fn, splits.num_classes, FLAGS.model, prefix, splits,
      FLAGS.bias_correction, out_dir, dict(spec, bias_correction=
                                           FLAGS.bias_correction))
  fileio.write_json(os.path.join(FLAGS.train_dir, "bias_correction.json"),
                    report)
  print("bias correction (%s): test accuracy %.2f%% -> %.2f%%; checkpoint %s"
        % (FLAGS.bias_correction, 100 * report["test_accuracy_before"],
           100 * report["test_accuracy_after"], report["checkpoint"]))
  print("%-14s %8s %8s %8s" % ("class", "offset", "before", "after"))
  for c, name in enumerate(splits.class_names):
    fmt = lambda v: "   -" if v is None else "%7.2f%%" % (100 * v)
    print("%-14s %8.3f %8s %8s" % (
        name[:14], report["offsets"][c],
        fmt(report["per_class_accuracy_before"][c]),
        fmt(report["per_class_accuracy_after"][c])))
  return report


def teacher_models():
  """Each teacher's (model name, checkpoint); names from the specs if unset."""
  # pylint: disable=g-import-not-at-top
  from distill_v1 import errors
  from distill_v1 import checkpoints
  # pylint: enable=g-import-not-at-top
  if FLAGS.teacher_graph:
    return [("graph", FLAGS.teacher_graph)]
  pairs = []
  for i, ckpt in enumerate(FLAGS.teacher_checkpoint):
    if FLAGS.teacher_model:
      pairs.append((FLAGS.teacher_model[i], ckpt))
      continue
    prefix = checkpoints.resolve_checkpoint(ckpt)
    try:
      spec = checkpoints.read_model_spec(prefix)
    except errors.CheckpointError as e:
      raise errors.ConfigError(
          "cannot tell the architecture of teacher %s (%s); pass "
          "--teacher_model" % (ckpt, e)) from None
    pairs.append((spec["model"], ckpt))
  return pairs


def _dry_build(model_fn, splits, train_extras):
  """Builds the training graph once, unused, before anything is written.

  A teacher checkpoint of another architecture or class count, or an unknown
  feature end point, then fails before `loop.train` creates --train_dir.
  """
  # pylint: disable=g-import-not-at-top
  from distill_v1.compat import tf
  from distill_v1.data import input_pipeline
  # pylint: enable=g-import-not-at-top
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(
        tf.float32, [None] + [int(d) for d in splits.image_shape])
    labels = tf.compat.v1.placeholder(tf.int64, [None])
    if train_extras:
      extras = {}
      for k, v in train_extras.items():
        if isinstance(v, input_pipeline.BatchFunction):
          v.setup(images)
          extras[k] = v(images)
        else:
          extras[k] = tf.compat.v1.placeholder(tf.as_dtype(v.dtype),
                                               [None] + list(v.shape[1:]))
      model_fn(images, labels, True, extras=extras)
    else:
      model_fn(images, labels, True)


def distill_model():
  """Loads the data, builds teacher(s) and student and runs the loop."""
  # pylint: disable=g-import-not-at-top
  import functools
  from distill_v1.data import datasets
  from distill_v1.models import nets_factory
  from distill_v1.teachers import checkpoint_teacher
  from distill_v1.training import distillation
  from distill_v1.training import loop
  # pylint: enable=g-import-not-at-top
  role = common_flags.cluster_role()
  if common_flags.serve_if_parameter_server(role):
    return None
  common_flags.refuse_in_cluster(role, [
      "prune_target_sparsity", "pruning_hparams", "bias_correction",
      "teacher_graph"])
  options = common_flags.model_options()
  student_fn = nets_factory.get_network_fn(FLAGS.model, **options)
  config = common_flags.training_config()
  loop.validate_config(config)
  pairs = teacher_models()
  terms = feature_terms()
  for name, _ in pairs:
    if not FLAGS.teacher_graph:  # Unknown names fail before loading.
      nets_factory.get_network_fn(name)
  splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir,
                                 validation_size=FLAGS.validation_size,
                                 seed=FLAGS.seed)
  splits = omit_classes(splits)
  if FLAGS.bias_correction and FLAGS.bias_correction != "learn":
    from distill_v1.training import bias_correction  # pylint: disable=g-import-not-at-top
    bias_correction.parse_offsets(FLAGS.bias_correction, splits.num_classes)
  if FLAGS.teacher_graph:
    from distill_v1.teachers import graph_teacher  # pylint: disable=g-import-not-at-top
    builders = [functools.partial(
        graph_teacher.build_graph_teacher, path=FLAGS.teacher_graph,
        input_name=FLAGS.teacher_input, output_name=FLAGS.teacher_output,
        input_scale=FLAGS.teacher_input_scale,
        input_layout=FLAGS.teacher_input_layout,
        allow_unsafe_ops=FLAGS.allow_unsafe_teacher_ops)]
  else:
    scope_of = (lambda i: "teacher") if len(pairs) == 1 else (
        lambda i: "teacher_%d" % i)
    builders = [
        functools.partial(checkpoint_teacher.build_checkpoint_teacher,
                          model=name, checkpoint=ckpt,
                          num_classes=splits.num_classes, scope=scope_of(i),
                          local_device=role.device if role else None)
        for i, (name, ckpt) in enumerate(pairs)]
  train_extras = None
  if FLAGS.teacher_logits_cache:
    from distill_v1.teachers import logits_cache  # pylint: disable=g-import-not-at-top
    logits = logits_cache.get_or_compute(
        FLAGS.teacher_logits_cache, builders, pairs, splits.train_images,
        splits.train_labels)
    train_extras = {distillation.CACHED_LOGITS_KEY:
                    logits.transpose(1, 0, 2)}
    builders = None
  elif FLAGS.teacher_in_input and not terms and not role:
    builders, train_extras = distillation.teacher_extras(builders)
  model_fn = distillation.distillation_model_fn(
      student_fn, splits.num_classes, FLAGS.model, builders,
      temperature=FLAGS.temperature, alpha=FLAGS.alpha,
      scale_soft_loss=FLAGS.scale_soft_loss, feature_terms=terms,
      feature_resize=FLAGS.feature_resize)
  spec = common_flags.model_spec(
      splits, distilled_from=["%s:%s" % p for p in pairs],
      temperature=FLAGS.temperature, alpha=FLAGS.alpha)
  if FLAGS.omit_classes:
    spec["omitted_classes"] = [int(c) for c in FLAGS.omit_classes]
  model_fn, pruning_hparams = common_flags.with_pruning(model_fn, splits)
  _dry_build(model_fn, splits, train_extras)
  metrics = common_flags.train_on_role(role, model_fn, splits, config, spec,
                                       train_extras=train_extras)
  if metrics is None:  # A worker other than the chief.
    return None
  common_flags.strip_pruning_masks(pruning_hparams)
  if FLAGS.bias_correction:
    correct_biases(student_fn, splits, spec)
  common_flags.print_final(metrics)
  return metrics


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("distill", distill_model)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
