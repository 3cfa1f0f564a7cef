"""Every bad input the binaries can meet: the table behind docs/errors.md.

Each `Case` is one bad input given to one binary, with the one stderr line
it must produce (a template: `…` stands for a path or a detail that varies)
and its exit code. `tests/errors_table_test.py` runs every case in-process
and checks the line, the exit code, that there is no traceback and that no
file was left half-written; `tools/errors_reference.py` writes the table to
docs/errors.md (and `--check`s that it is current).

`argv` and `setup` see a `World` of shared inputs: `data` (a good IDX folder
of 28x28 images, 10 classes), `run` (an mlp_student trained on it), `mobile`
(a mobilenet_v1 with width 0.25), `teacher4` (a teacher of 4 classes),
`hostile` (a frozen graph whose logits depend on WriteFile), `frozen` (a
harmless frozen graph of 8x8 images), `tmp` (a fresh folder per case).
This module imports no TensorFlow, so the doc tool is fast.
"""

import collections
import errno
import gzip
import os
import shutil

import numpy as np

Case = collections.namedtuple("Case", [
        "name",  # test id.
        "category",  # section of docs/errors.md.
        "bad_input",  # what is wrong, in words.
        "binary",  # scripts/<binary>.py.
        "argv",  # fn(world, extra) -> flags, without the program name.
        "message",  # the stderr line; `…` matches anything.
        "exit_code",
        "setup",  # fn(world) -> dict of extra paths, or None.
        "inject",  # name of a write failure (see INJECTIONS), or None.
        "absent",  # fn(world, extra) -> paths that must not exist afterwards.
])
Case.__new__.__defaults__ = (None, None, None)

WILDCARD = "…"

# Exit codes of distill_v1.errors (written out so this module needs no
# imports from the library) and absl's for a flag that fails parsing.
EXIT_CODES = collections.OrderedDict([
    (1, "absl flag parsing: a flag value or combination its validator "
        "refuses"),
    (2, "DataError: a data or model file is missing, malformed or "
        "inconsistent"),
    (3, "ConfigError: a flag value or combination is invalid"),
    (4, "CheckpointError: a checkpoint is missing, damaged or of another "
        "architecture"),
    (5, "UnsafeGraphError: a model file holds ops outside the allow-list"),
    (6, "ExportError: an output could not be written (unwritable, full "
        "disk, exists)"),
    (7, "DivergenceError: the loss became NaN or Inf, or diverged"),
])

# Write failures injected by the test (CI runs as root, so permissions
# cannot make a folder unwritable): os.replace, the commit step of every
# atomic write, raises this OSError when the target's name matches.
INJECTIONS = {
        "disk_full": (errno.ENOSPC, "No space left on device"),
        "read_only": (errno.EROFS, "Read-only file system"),
}

IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"


def _copy_data(world):
  folder = os.path.join(world.tmp, "data")
  shutil.copytree(world.data, folder)
  return folder


def _rewrite(folder, name, data, compress=True):
  with open(os.path.join(folder, name), "wb") as f:
    f.write(gzip.compress(data, mtime=0) if compress else data)


def _raw(folder, name):
  with open(os.path.join(folder, name), "rb") as f:
    return gzip.decompress(f.read())


def _idx(array, code=0x08):
  array = np.asarray(array)
  return (bytes([0, 0, code, array.ndim]) +
          np.asarray(array.shape, ">i4").tobytes() + array.astype(
              ">u1" if code == 0x08 else ">i4").tobytes())


def missing_file(world):
  folder = _copy_data(world)
  os.remove(os.path.join(folder, IMAGES))
  return {"data": folder}


def truncated_gzip(world):
  folder = _copy_data(world)
  with open(os.path.join(folder, IMAGES), "rb") as f:
    data = f.read()
  _rewrite(folder, IMAGES, data[:len(data) // 2], compress=False)
  return {"data": folder}


def truncated_idx(world):
  folder = _copy_data(world)
  raw = _raw(folder, IMAGES)
  _rewrite(folder, IMAGES, raw[:-100])
  return {"data": folder}


def not_idx(world):
  folder = _copy_data(world)
  _rewrite(folder, IMAGES, b"<html>404 Not Found</html>", compress=False)
  return {"data": folder}


def corrupted_gzip(world):
  folder = _copy_data(world)
  with open(os.path.join(folder, IMAGES), "rb") as f:
    data = bytearray(f.read())
  data[len(data) // 2] ^= 0xFF
  _rewrite(folder, IMAGES, bytes(data), compress=False)
  return {"data": folder}


def label_count_mismatch(world):
  folder = _copy_data(world)
  _rewrite(folder, LABELS, _idx(np.zeros([100], np.uint8)))
  return {"data": folder}


def images_2d(world):
  folder = _copy_data(world)
  _rewrite(folder, IMAGES, _idx(np.zeros([128, 784], np.uint8)))
  return {"data": folder}


def label_out_of_range(world):
  folder = _copy_data(world)
  labels = np.frombuffer(_raw(folder, LABELS)[8:], np.uint8).copy()
  labels[5] = 12
  _rewrite(folder, LABELS, _idx(labels))
  return {"data": folder}


def npz_missing_arrays(world):
  path = os.path.join(world.tmp, "mine.npz")
  np.savez(path, x_train=np.zeros([4, 8, 8], np.uint8),
           y_train=np.zeros([4], np.int64))
  return {"npz": path}


def npz_shapes_differ(world):
  path = os.path.join(world.tmp, "mine.npz")
  np.savez(path, x_train=np.zeros([4, 8, 8], np.uint8),
           y_train=np.zeros([4], np.int64),
           x_test=np.zeros([4, 9, 9], np.uint8),
           y_test=np.zeros([4], np.int64))
  return {"npz": path}


def damaged_checkpoints(world):
  run = os.path.join(world.tmp, "run")
  shutil.copytree(world.run, run)
  for name in os.listdir(run):
    if name.startswith("model.ckpt-") and ".data-" in name:
      path = os.path.join(run, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
  return {"run": run}


def copied_run(world):
  run = os.path.join(world.tmp, "run")
  shutil.copytree(world.run, run)
  return {"run": run}


def a_file(world):
  path = os.path.join(world.tmp, "file.txt")
  with open(path, "w") as f:
    f.write("not a folder\n")
  return {"file": path}


def existing_export(world):
  out = os.path.join(world.tmp, "export")
  os.makedirs(out)
  with open(os.path.join(out, "frozen_graph.pb"), "wb") as f:
    f.write(b"an earlier export")
  return {"out": out}


def garbage_pb(world):
  path = os.path.join(world.tmp, "model.pb")
  with open(path, "wb") as f:
    f.write(b"\xff\xfe this is not a GraphDef \x00\x01" * 10)
  return {"pb": path}


def wrong_size_images(world):
  path = os.path.join(world.tmp, "images.npz")
  np.savez(path, x_test=np.zeros([2, 10, 10], np.uint8))
  return {"images": path}


def _train(world, extra, *flags):
  return ["--data_dir=" + extra.get("data", world.data),
          "--train_dir=" + extra.get("train_dir",
                                     os.path.join(world.tmp, "train")),
          "--model=mlp_student", "--batch_size=64", "--epochs=1",
          "--log_every_steps=1000"] + list(flags)


def _distill(world, extra, *flags):
  return _train(world, extra, "--teacher_checkpoint=" + world.run) + list(
      flags)


def _train_dir(world):
  return [os.path.join(world.tmp, "train")]


def _data_case(name, bad_input, message, setup):
  """A bad data file given to `train`, which refuses it before writing."""
  return Case(name, "Data files", bad_input, "train",
              lambda w, e: _train(w, e), message, 2, setup,
              absent=lambda w, e: _train_dir(w))


# (category, bad input, binary, argv, message, exit code, setup, inject,
# absent) -- grouped as in docs/errors.md.
CASES = [
    # ------------------------------------------------------------- data files
    _data_case(
        "data_file_missing", "a data file is missing from --data_dir",
        "train: error: fashion_mnist not found in data_dir: data_dir …: "
        "incomplete, missing train-images-idx3-ubyte[.gz]. Expected …. To "
        "get it: …",
        missing_file),
    _data_case(
        "data_file_truncated_gzip",
        "a gzip data file is truncated (interrupted download)",
        "train: error: …/" + IMAGES + ": truncated gzip stream: the "
        "compressed data (… bytes) ends before the end of the stream",
        truncated_gzip),
    _data_case(
        "data_file_truncated_idx",
        "an IDX file holds fewer values than its header says",
        "train: error: …/" + IMAGES + ": truncated: header says 128 x 28 x "
        "28 = 100352 bytes of data, file has 100252",
        truncated_idx),
    _data_case(
        "data_file_not_idx",
        "a data file is not IDX at all (an HTML error page)",
        "train: error: …/" + IMAGES + ": bad magic number 0x3C68746D: an "
        "IDX file starts with two zero bytes, then the data type code and "
        "the number of dimensions (is this an IDX file?)",
        not_idx),
    _data_case(
        "data_file_corrupted", "a gzip data file is corrupted (a flipped byte)",
        "train: error: …/" + IMAGES + ": broken gzip stream (…)",
        corrupted_gzip),
    _data_case(
        "data_files_mismatched", "images and labels files of different lengths",
        "train: error: …/" + IMAGES + " has 128 images but …/" + LABELS +
        " has 100 labels",
        label_count_mismatch),
    _data_case(
        "data_wrong_dimensions",
        "an images file with the wrong number of dimensions",
        "train: error: …/" + IMAGES + ": wrong number of dimensions: images "
        "need 3 [num_images, height, width], header has 2 [128, 784]",
        images_2d),
    _data_case(
        "data_label_out_of_range", "a label outside [0, num_classes)",
        "train: error: …/" + LABELS + ": label out of range: 1 labels "
        "outside [0, 10), the first is 12 at index 5",
        label_out_of_range),
    Case("npz_missing_arrays", "Data files",
         "an --dataset=npz:PATH file without the test arrays", "train",
         lambda w, e: _train(w, e, "--dataset=npz:" + e["npz"]),
         "train: error: …/mine.npz: missing arrays ['x_test', 'y_test']; the "
         "file holds ['x_train', 'y_train'], expected …", 2,
         npz_missing_arrays,
         absent=lambda w, e: _train_dir(w)),
    Case("npz_shapes_differ", "Data files",
         "npz train and test images of different shapes", "train",
         lambda w, e: _train(w, e, "--dataset=npz:" + e["npz"]),
         "train: error: …/mine.npz: x_train images are … but x_test images "
         "are …", 2, npz_shapes_differ, absent=lambda w, e: _train_dir(w)),
    Case("predict_wrong_image_size", "Data files",
         "images of another size than the model takes", "predict",
         lambda w, e: ["--model_file=" + w.frozen, "--images=" + e["images"]],
         "predict: error: …/images.npz holds images of shape [10, 10, 1]; "
         "the model takes [8, 8, 1] (height, width, channels)", 2,
         wrong_size_images),
    # ------------------------------------------------------------ checkpoints
    Case("checkpoint_missing", "Checkpoints",
         "--checkpoint names nothing", "evaluate",
         lambda w, e: ["--checkpoint=" + os.path.join(w.tmp, "nothing")],
         "evaluate: error: checkpoint …/nothing not found: give a checkpoint "
         "prefix (without .index) or a training directory", 4),
    Case("checkpoint_other_architecture", "Checkpoints",
         "a checkpoint of another architecture (each variable named with "
         "both shapes)", "evaluate",
         lambda w, e: ["--checkpoint=" + w.mobile, "--width_multiplier=0.5",
                       "--data_dir=" + w.data, "--latency_repeats=1",
                       "--output_json=" + os.path.join(w.tmp, "eval.json")],
         "evaluate: error: checkpoint …/model.ckpt-2 does not fit model "
         "mobilenet_v1 (another architecture or options?): "
         "mobilenet_v1/conv2d_0/kernel has shape [3, 3, 1, 8] in the "
         "checkpoint but [3, 3, 1, 16] in the model; …; and 126 more. The "
         "checkpoint holds variables under: global_step, mobilenet_v1", 4,
         absent=lambda w, e: [os.path.join(w.tmp, "eval.json")]),
    Case("teacher_other_architecture", "Checkpoints",
         "--teacher_model that does not match the teacher checkpoint",
         "distill", lambda w, e: _distill(w, e, "--teacher_model=mlp_teacher"),
         "distill: error: checkpoint …/model.ckpt-2 does not fit model "
         "mlp_teacher (another architecture or options?): …mlp_teacher/… "
         "is missing from the checkpoint…. The checkpoint holds variables "
         "under: global_step, mlp_student", 4),
    Case("teacher_class_mismatch", "Checkpoints",
         "a teacher of another class count than the student's data",
         "distill",
         lambda w, e: _train(w, e, "--teacher_checkpoint=" + w.teacher4),
         "distill: error: teacher …/t4/model.ckpt-2 was trained on 4 classes "
         "(its model_spec.json), the student's data set has 10: distil on "
         "the teacher's data set", 4),
    Case("checkpoints_all_damaged", "Checkpoints",
         "every checkpoint of the --train_dir to resume is truncated",
         "train", lambda w, e: _train(w, e, "--train_dir=" + e["run"],
                                      "--epochs=2"),
         "train: error: no usable checkpoint in …/run: …/run/model.ckpt-2 "
         "is damaged (…); delete the model.ckpt-* files and the `checkpoint` "
         "file to start again", 4, damaged_checkpoints),
    Case("train_dir_of_another_model", "Checkpoints",
         "--train_dir holds the run of another model", "train",
         lambda w, e: _train(w, e, "--train_dir=" + e["run"],
                             "--model=mlp_teacher"),
         "train: error: train_dir …/run holds a run with "
         "model='mlp_student', not 'mlp_teacher': use another --train_dir "
         "or delete it", 3,
         copied_run),
    # ------------------------------------------------------------ model files
    Case("unsafe_teacher_graph", "Model files",
         "a teacher graph whose logits depend on WriteFile", "distill",
         lambda w, e: ["--teacher_graph=" + w.hostile, "--data_dir=" + w.data,
                       "--train_dir=" + os.path.join(w.tmp, "train"),
                       "--model=mlp_student"],
         "distill: error: teacher graph …/hostile_pb.pb: op WriteFile (node "
         "'evil/write') is not on the allow-list of pure tensor ops "
         "(WriteFile does file or network I/O); pass "
         "--allow_unsafe_teacher_ops (allow_unsafe_ops=True) if you trust "
         "this file", 5),
    Case("unsafe_model_file", "Model files",
         "predict on a graph whose logits depend on WriteFile", "predict",
         lambda w, e: ["--model_file=" + w.hostile,
                       "--images=" + os.path.join(w.data, IMAGES)],
         "predict: error: model file …/hostile_pb.pb: op WriteFile (node "
         "'evil/write') is not on the allow-list of pure tensor ops "
         "(WriteFile does file or network I/O); pass --allow_unsafe_ops "
         "(allow_unsafe_ops=True) if you trust this file", 5),
    Case("model_file_garbage", "Model files",
         "a .pb file that is not a GraphDef", "predict",
         lambda w, e: ["--model_file=" + e["pb"],
                       "--images=" + os.path.join(w.data, IMAGES)],
         "predict: error: cannot parse …/model.pb as a GraphDef: …", 2,
         garbage_pb),
    # ------------------------------------------------------------------ flags
    Case("flag_temperature", "Flags",
         "--temperature=0", "distill",
         lambda w, e: _distill(w, e, "--temperature=0"),
         "FATAL Flags parsing error: flag --temperature=0.0: --temperature "
         "must be > 0", 1),
    Case("flag_alpha", "Flags", "--alpha outside [0, 1]", "distill",
         lambda w, e: _distill(w, e, "--alpha=1.5"),
         "FATAL Flags parsing error: flag --alpha=1.5: --alpha must be in "
         "[0, 1]", 1),
    Case("flag_learning_rate", "Flags", "--learning_rate=0", "train",
         lambda w, e: _train(w, e, "--learning_rate=0"),
         "FATAL Flags parsing error: flag --learning_rate=0.0: "
         "--learning_rate must be > 0", 1),
    Case("flag_not_a_number", "Flags", "--batch_size=many", "train",
         lambda w, e: _train(w, e, "--batch_size=many"),
         "FATAL Flags parsing error: flag --batch_size=many: invalid literal "
         "for int() with base 10: 'many'", 1),
    Case("flag_divergence_factor", "Flags", "--divergence_factor=0.5",
         "train", lambda w, e: _train(w, e, "--divergence_factor=0.5"),
         "FATAL Flags parsing error: flag --divergence_factor=0.5: "
         "--divergence_factor must be 0 (off) or > 1", 1),
    Case("flag_two_teachers", "Flags",
         "both --teacher_checkpoint and --teacher_graph", "distill",
         lambda w, e: _distill(w, e, "--teacher_graph=" + w.hostile),
         "FATAL Flags parsing error: flags teacher_checkpoint=[…], "
         "teacher_graph=…: give exactly one of --teacher_checkpoint (one or "
         "more, comma-separated) and --teacher_graph", 1),
    Case("flag_unknown_model", "Flags", "--model that is not in the zoo",
         "train", lambda w, e: _train(w, e, "--model=resnet9000"),
         "train: error: Unknown model 'resnet9000'; known models: "
         "mlp_teacher, mlp_student, cnn_teacher, cnn_student, mobilenet_v1",
         3,
         absent=lambda w, e: _train_dir(w)),
    Case("flag_validation_size", "Flags",
         "--validation_size not below the number of training examples",
         "train", lambda w, e: _train(w, e, "--validation_size=128"),
         "train: error: validation_size 128 is out of range: expected 0 <= "
         "validation_size < 128 (the number of training examples)", 3,
         absent=lambda w, e: _train_dir(w)),
    Case("flag_bias_correction", "Flags",
         "--bias_correction=learn without --validation_size", "distill",
         lambda w, e: _distill(w, e, "--bias_correction=learn"),
         "FATAL Flags parsing error: flags bias_correction=learn, "
         "validation_size=0: --bias_correction=learn fits the offsets on the "
         "validation split: give --validation_size > 0", 1),
    Case("flag_formats", "Flags", "--formats with an unknown format",
         "export", lambda w, e: ["--checkpoint=" + w.run, "--formats=onnx"],
         "FATAL Flags parsing error: flag --formats=['onnx']: --formats "
         "must be 'all' or distinct names among frozen_graph, saved_model, "
         "float32, dynamic_range, float16, int8", 1),
    # ----------------------------------------------------------------- output
    Case("train_dir_unwritable", "Output",
         "--train_dir below a regular file (cannot be created)", "train",
         lambda w, e: _train(w, e, "--train_dir=" + e["file"] + "/run"),
         "train: error: cannot create train_dir …/file.txt/run: Not a "
         "directory", 3, a_file),
    Case("train_dir_disk_full", "Output",
         "the disk fills up while a run writes its files", "train",
         lambda w, e: _train(w, e),
         "train: error: cannot write …/train/model_spec.json: No space left "
         "on device", 6, inject="disk_full",
         absent=lambda w, e: [os.path.join(w.tmp, "train",
                                           "model_spec.json")]),
    Case("evaluate_output_read_only", "Output",
         "--output_json on a read-only file system", "evaluate",
         lambda w, e: ["--checkpoint=" + w.run, "--data_dir=" + w.data,
                       "--latency_repeats=1",
                       "--output_json=" + os.path.join(w.tmp, "eval.json")],
         "evaluate: error: cannot write …/eval.json: Read-only file system",
         6, inject="read_only",
         absent=lambda w, e: [os.path.join(w.tmp, "eval.json")]),
    Case("export_exists", "Output",
         "an export target that exists (without --overwrite)", "export",
         lambda w, e: ["--checkpoint=" + w.run, "--output_dir=" + e["out"],
                       "--formats=frozen_graph", "--noverify"],
         "export: error: export target(s) already exist in …/export: "
         "frozen_graph.pb; pass --overwrite (overwrite=True) to replace them",
         6, existing_export),
    Case("export_output_is_a_file", "Output",
         "--output_dir that is a regular file", "export",
         lambda w, e: ["--checkpoint=" + w.run, "--output_dir=" + e["file"],
                       "--formats=frozen_graph", "--noverify"],
         "export: error: output folder …/file.txt is a file", 6, a_file),
    Case("export_disk_full", "Output",
         "the disk fills up while an export is written", "export",
         lambda w, e: ["--checkpoint=" + w.run,
                       "--output_dir=" + os.path.join(w.tmp, "export"),
                       "--formats=frozen_graph", "--noverify"],
         "export: error: cannot write …/frozen_graph.pb: No space left on "
         "device", 6, inject="disk_full",
         absent=lambda w, e: [os.path.join(w.tmp, "export",
                                           "frozen_graph.pb")]),
    # --------------------------------------------------------------- training
    Case("loss_nan", "Training",
         "a learning rate so large that the loss becomes NaN", "train",
         lambda w, e: _train(w, e, "--learning_rate=1e30", "--epochs=3",
                             "--batch_size=16", "--save_every_steps=1"),
         "train: error: loss became nan at step …; stopped. The last good "
         "checkpoint is …. Lower --learning_rate (or raise "
         "--warmup_epochs).", 7),
]


def message_pattern(message):
  """The regular expression of a message template (`…` = anything)."""
  import re  # pylint: disable=g-import-not-at-top
  return "^" + ".*".join(re.escape(part) for part in message.split(
      WILDCARD)) + "$"
