r"""Exports a trained checkpoint for serving and for mobile, then verifies it.

Usage:
  distill-v1-export --checkpoint=/tmp/cnn_student
  distill-v1-export --checkpoint=/tmp/cnn_student/model.ckpt-4690 \
      --output_dir=/tmp/cnn_student_export --formats=frozen_graph,int8 \
      --overwrite

Writes into --output_dir (default: <checkpoint dir>/export):
  frozen_graph.pb             frozen GraphDef (batch norm folded)
  saved_model/1/              SavedModel, signature `serving_default`:
                              float32 images [None, H, W, C] in [0, 1] ->
                              logits, probabilities, classes
  model_float32.tflite        TFLite, float32
  model_dynamic_range.tflite  TFLite, int8 weights, float input/output
  model_float16.tflite        TFLite, float16 weights
  model_int8.tflite           TFLite, int8 input and output (calibrated on
                              --num_calibration_examples training images)
  class_names.txt, export.json

Before publishing anything, every file is read back in a fresh Python
process by its real runtime (TFLite interpreter, tf.saved_model.load,
import_graph_def in a session); its test accuracy, size and batch-1 latency
are printed beside the checkpoint session's, and a file that diverges
beyond tolerance fails the export (float exports: 0.1 accuracy points,
int8 weights: 1 point). `--noverify` skips this.

An existing target is refused unless --overwrite. Bad input ends with one
line `export: error: ...` on stderr and the error's exit code (2 data,
3 configuration, 4 checkpoint, 6 export); nothing half-written remains.
"""

import os

from absl import app
from absl import flags

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "checkpoint", None,
    "Checkpoint prefix (dir/model.ckpt-<step>) or training directory (its "
    "latest checkpoint is used).")
common_flags.define_export_flags("<checkpoint dir>/export")
flags.DEFINE_string(
    "dataset", None,
    "Data set for int8 calibration (training split) and verification (test "
    "split): fashion_mnist, mnist or npz:PATH. Default: the one recorded in "
    "model_spec.json.")
flags.DEFINE_string("data_dir", None, "Folder with the data set files.")
common_flags.define_model_flags(default_model=None)
flags.declare_key_flag("model")
flags.declare_key_flag("width_multiplier")
flags.DEFINE_integer(
    "num_calibration_examples", 200,
    "Training images that calibrate the int8 activation ranges.",
    lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the calibration sample.")
flags.DEFINE_integer("saved_model_version", 1,
                     "Version folder of the SavedModel (saved_model/<n>/).",
                     lower_bound=1)
flags.DEFINE_boolean(
    "fold_batch_norm", True,
    "Fold batch norm into the preceding convolution / dense kernels.")

flags.mark_flag_as_required("checkpoint")
flags.register_validator("checkpoint", bool,
                         message="--checkpoint must not be empty")


def _output_dir(prefix):
  if FLAGS.output_dir:
    return FLAGS.output_dir
  return os.path.join(os.path.dirname(os.path.abspath(prefix)), "export")


def export():
  """Exports --checkpoint; prints each file and the verification table."""
  # pylint: disable=g-import-not-at-top
  from distill_v1 import checkpoints
  from distill_v1.evaluation import verify
  from distill_v1.export import export_lib
  # pylint: enable=g-import-not-at-top
  prefix = checkpoints.resolve_checkpoint(FLAGS.checkpoint)
  model_options = None
  if FLAGS["width_multiplier"].present:
    model_options = {"width_multiplier": FLAGS.width_multiplier}
  verifier = None
  if FLAGS.verify:
    verifier = verify.Verifier(num_compare=FLAGS.num_compare_examples,
                               latency_repeats=FLAGS.latency_repeats,
                               max_test_examples=FLAGS.max_test_examples)
  out_dir = _output_dir(prefix)
  manifest = export_lib.export_checkpoint(
      prefix, out_dir, formats=FLAGS.formats, overwrite=FLAGS.overwrite,
      model=FLAGS.model, model_options=model_options,
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
      num_calibration_examples=FLAGS.num_calibration_examples,
      seed=FLAGS.seed, saved_model_version=FLAGS.saved_model_version,
      fold_batch_norm=FLAGS.fold_batch_norm, verifier=verifier)
  print("exported %s (%s) to %s" % (manifest["checkpoint"],
                                    manifest["model"], manifest["output_dir"]))
  if manifest["folded_batch_norms"]:
    print("folded %d batch norm / scale / shift nodes into kernels" %
          manifest["folded_batch_norms"])
  if verifier is not None:
    print(verify.format_report(manifest["verification"]))
  else:
    for name, entry in manifest["files"].items():
      print("%-14s %-28s %12s bytes" % (name, entry["path"],
                                        "{:,}".format(entry["bytes"])))
  int8 = manifest["tflite"].get("int8")
  if int8:
    for kind in ("inputs", "outputs"):
      for detail in int8[kind]:
        print("int8 %s %s: %s scale %.6g zero point %d" % (
            kind[:-1], detail["name"], detail["dtype"], detail["scale"],
            detail["zero_point"]))
  print("wrote %s" % os.path.join(manifest["output_dir"],
                                  export_lib.MANIFEST_FILENAME))
  return manifest


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("export", export)


def run():
  """Console-script entry point (`distill-v1-export`)."""
  app.run(main)


if __name__ == "__main__":
  run()
