r"""Model Optimization Toolkit peer of the lightweighting benchmark.

Reproduces BENCHMARK.md's "Pruning (peer: Model Optimization Toolkit 0.8.1)"
table on this machine, plus the Keras TFLite conversion sizes of its
"Inference and TFLite" table, so that docs/results.md puts the peer's
figures beside distill_v1's measured in the same place:

  1. `mlp_student` and `cnn_student` as tf-keras (Keras 2) models, trained
     with BENCHMARK.md's student recipe (plain SGD, learning rate 0.1 / 0.05,
     5 / 10 epochs, batch 128);
  2. for each target sparsity (0.8, 0.9): `prune_low_magnitude` with
     `PolynomialDecay` from 0 to the target over the fine-tuning run (begin
     step 0, end step = its last step, the MOT guide's setting), 2 fine-tuning
     epochs with `UpdatePruningStep` (the student's SGD and learning rate),
     then `strip_pruning`; test accuracy before -> after and gzip bytes dense
     -> pruned of the saved .h5 (`include_optimizer=False`, as the MOT guide
     measures it) and of the float32 TFLite file;
  3. `TFLiteConverter.from_keras_model` of the dense models: float32,
     dynamic range, full int8 (200 calibration images of the training set):
     bytes, test accuracy and median batch-1 `invoke()` microseconds.

MOT prunes only tf-keras models (a Keras 3 model is refused), and tf-keras
depends on the full `tensorflow` package, so this file runs in its own venv,
never in the project's:

  bash benchmarks/setup_peer_venv.sh /work/peer-venv
  /work/peer-venv/bin/python benchmarks/mot_peer.py \
      --output_json=/work/runs/lw/mot_peer.json

benchmarks/lightweight_benchmark.py --peer_json=... folds the JSON into
docs/benchmarks/lightweight.json.

Data: Fashion-MNIST through distill_v1.data.datasets (numpy only; the repo
root is put on sys.path), pixels in [0, 1], the official split.
"""

import gzip
import os
import sys
import tempfile
import time

# tensorflow_model_optimization must see tf-keras as tf.keras: set before
# TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position
from distill_v1.data import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

BATCH_SIZE = 128
NUM_CLASSES = 10
# BENCHMARK.md's student recipe.
STUDENT_RECIPES = {
    "mlp_student": dict(learning_rate=0.1, epochs=5),
    "cnn_student": dict(learning_rate=0.05, epochs=10),
}
EXPECTED_PARAMS = {"mlp_student": 1276810, "cnn_student": 20490}

flags.DEFINE_list("models", ["mlp_student", "cnn_student"],
                  "Models to train, prune and convert.")
flags.DEFINE_list("sparsities", ["0.8", "0.9"], "Target sparsities.")
flags.DEFINE_integer("fine_tune_epochs", 2,
                     "Fine-tuning epochs under prune_low_magnitude.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation and shuffling.")
flags.DEFINE_integer("representative_size", 200,
                     "Training images calibrating the int8 conversion.")
flags.DEFINE_bool("tflite", True, "Also convert the dense models to TFLite.")
flags.DEFINE_string("output_json", None, "Where the results go.")


def _imports():
  """TensorFlow, tf-keras and MOT (only in the peer venv)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tf_keras
  import tensorflow_model_optimization as tfmot
  # pylint: enable=g-import-not-at-top
  return tf, tf_keras, tfmot


def build_model(keras, name):
  """BENCHMARK.md's mlp_student / cnn_student as a tf-keras Sequential."""
  layers = keras.layers
  if name == "mlp_student":
    model_layers = [layers.Flatten(input_shape=(28, 28, 1)),
                    layers.Dense(800, activation="relu"),
                    layers.Dense(800, activation="relu"),
                    layers.Dense(NUM_CLASSES)]
  elif name == "cnn_student":
    model_layers = [
        layers.Conv2D(16, 3, padding="same", activation="relu",
                      input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(NUM_CLASSES)]
  else:
    raise ValueError("--models: %r is not mlp_student or cnn_student" % name)
  model = keras.Sequential(model_layers, name=name)
  if model.count_params() != EXPECTED_PARAMS[name]:
    raise AssertionError("%s has %d parameters, BENCHMARK.md says %d" %
                         (name, model.count_params(), EXPECTED_PARAMS[name]))
  return model


def _compile(keras, model, learning_rate):
  model.compile(
      optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"])


def _accuracy(model, data):
  logits = model.predict(data.test_images, batch_size=1000, verbose=0)
  return float(np.mean(np.argmax(logits, axis=1) == data.test_labels))


def _gzip_bytes(path):
  with open(path, "rb") as f:
    raw = f.read()
  return len(raw), len(gzip.compress(raw, compresslevel=9))


def _h5_sizes(keras, model, folder, name):
  path = os.path.join(folder, name + ".h5")
  keras.models.save_model(model, path, include_optimizer=False)
  size, gz = _gzip_bytes(path)
  return {"h5_bytes": size, "h5_gzip_bytes": gz}


def convert_tflite(tf, model, mode, representative=None):
  """TFLiteConverter.from_keras_model: float32, dynamic_range or int8."""
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  if mode == "dynamic_range":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  elif mode == "int8":
    def representative_dataset():
      for image in representative:
        yield [image[np.newaxis].astype(np.float32)]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
  elif mode != "float32":
    raise ValueError("TFLite mode %r" % (mode,))
  return converter.convert()


def evaluate_tflite(tf, flatbuffer, data):
  """Test accuracy and median batch-1 invoke() microseconds of a .tflite."""
  interpreter = tf.lite.Interpreter(model_content=flatbuffer)
  interpreter.allocate_tensors()
  inp = interpreter.get_input_details()[0]
  out = interpreter.get_output_details()[0]
  images = data.test_images
  if inp["dtype"] == np.int8:
    scale, zero = inp["quantization"]
    feed = np.clip(np.round(images / scale + zero), -128, 127).astype(np.int8)
  else:
    feed = images.astype(np.float32)
  predictions = np.empty(len(images), np.int64)
  seconds = np.empty(len(images))
  for i in range(len(images)):
    interpreter.set_tensor(inp["index"], feed[i:i + 1])
    start = time.perf_counter()
    interpreter.invoke()
    seconds[i] = time.perf_counter() - start
    # argmax is unchanged by int8 dequantization (positive scale).
    predictions[i] = np.argmax(interpreter.get_tensor(out["index"])[0])
  return {"test_accuracy": float(np.mean(predictions == data.test_labels)),
          "latency_us_median": float(np.median(seconds) * 1e6)}


def prune_and_fine_tune(tf, keras, tfmot, dense, name, sparsity, data,
                        learning_rate, folder):
  """prune_low_magnitude -> fit -> strip_pruning; accuracy and sizes."""
  steps = int(np.ceil(len(data.train_labels) / BATCH_SIZE) *
              FLAGS.fine_tune_epochs)
  model = keras.models.clone_model(dense)
  model.set_weights(dense.get_weights())
  schedule = tfmot.sparsity.keras.PolynomialDecay(
      initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
      end_step=steps)
  pruned = tfmot.sparsity.keras.prune_low_magnitude(
      model, pruning_schedule=schedule)
  _compile(keras, pruned, learning_rate)
  start = time.time()
  pruned.fit(data.train_images, data.train_labels, batch_size=BATCH_SIZE,
             epochs=FLAGS.fine_tune_epochs, shuffle=True, verbose=0,
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  seconds = time.time() - start
  stripped = tfmot.sparsity.keras.strip_pruning(pruned)
  kernels = [w for w in stripped.get_weights() if w.ndim > 1]
  zeros = sum(int(np.sum(w == 0)) for w in kernels)
  total = sum(w.size for w in kernels)
  result = {"target_sparsity": sparsity,
            "test_accuracy": _accuracy(stripped, data),
            "kernel_sparsity": zeros / float(total),
            "fine_tune_steps": steps, "fine_tune_seconds": seconds}
  result.update(_h5_sizes(keras, stripped, folder,
                          "%s_p%d" % (name, round(100 * sparsity))))
  flatbuffer = convert_tflite(tf, stripped, "float32")
  result["tflite_float32_bytes"] = len(flatbuffer)
  result["tflite_float32_gzip_bytes"] = len(gzip.compress(flatbuffer, 9))
  return result


def run_model(tf, keras, tfmot, name, data, folder):
  """Trains `name` with the student recipe, prunes it, converts it."""
  recipe = STUDENT_RECIPES[name]
  keras.utils.set_random_seed(FLAGS.seed)
  dense = build_model(keras, name)
  _compile(keras, dense, recipe["learning_rate"])
  start = time.time()
  dense.fit(data.train_images, data.train_labels, batch_size=BATCH_SIZE,
            epochs=recipe["epochs"], shuffle=True, verbose=0)
  result = {"params": int(dense.count_params()),
            "recipe": dict(recipe, optimizer="sgd", batch_size=BATCH_SIZE),
            "train_seconds": time.time() - start,
            "dense": {"test_accuracy": _accuracy(dense, data)}}
  result["dense"].update(_h5_sizes(keras, dense, folder, name))
  flatbuffer = convert_tflite(tf, dense, "float32")
  result["dense"]["tflite_float32_bytes"] = len(flatbuffer)
  result["dense"]["tflite_float32_gzip_bytes"] = len(
      gzip.compress(flatbuffer, 9))
  print("%s: trained %d epochs in %.0f s, test accuracy %.2f%%, .h5 gzip %s "
        "bytes" % (name, recipe["epochs"], result["train_seconds"],
                   100 * result["dense"]["test_accuracy"],
                   format(result["dense"]["h5_gzip_bytes"], ",")), flush=True)

  result["pruning"] = []
  for sparsity in [float(s) for s in FLAGS.sparsities]:
    keras.utils.set_random_seed(FLAGS.seed)
    pruned = prune_and_fine_tune(tf, keras, tfmot, dense, name, sparsity,
                                 data, recipe["learning_rate"], folder)
    result["pruning"].append(pruned)
    print("%s: sparsity %.2f: accuracy %.2f%% -> %.2f%%, .h5 gzip %s -> %s "
          "bytes, float32 TFLite gzip %s -> %s bytes" % (
              name, sparsity, 100 * result["dense"]["test_accuracy"],
              100 * pruned["test_accuracy"],
              format(result["dense"]["h5_gzip_bytes"], ","),
              format(pruned["h5_gzip_bytes"], ","),
              format(result["dense"]["tflite_float32_gzip_bytes"], ","),
              format(pruned["tflite_float32_gzip_bytes"], ",")), flush=True)

  if FLAGS.tflite:
    chosen = np.random.RandomState(0).permutation(
        len(data.train_images))[:FLAGS.representative_size]
    representative = data.train_images[np.sort(chosen)]
    result["tflite"] = {}
    for mode in ("float32", "dynamic_range", "int8"):
      flatbuffer = convert_tflite(tf, dense, mode, representative)
      measured = evaluate_tflite(tf, flatbuffer, data)
      measured["bytes"] = len(flatbuffer)
      measured["gzip_bytes"] = len(gzip.compress(flatbuffer, 9))
      result["tflite"][mode] = measured
      print("%s: TFLite %s: %s bytes, test accuracy %.2f%%, batch-1 invoke "
            "%.0f us" % (name, mode, format(measured["bytes"], ","),
                         100 * measured["test_accuracy"],
                         measured["latency_us_median"]), flush=True)
  return result


def main(argv):
  del argv
  tf, keras, tfmot = _imports()
  # pylint: disable=g-import-not-at-top
  import importlib.metadata as metadata
  # pylint: enable=g-import-not-at-top
  data = datasets.load_dataset("fashion_mnist")
  report = {
      "versions": {
          "tensorflow": tf.__version__,
          "tf_keras": metadata.version("tf-keras"),
          "tensorflow_model_optimization": metadata.version(
              "tensorflow-model-optimization"),
          "python": sys.version.split()[0]},
      "command": " ".join([sys.executable] + sys.argv),
      "fine_tune_epochs": FLAGS.fine_tune_epochs,
      "seed": FLAGS.seed,
      "gzip": "gzip level 9 of the whole file (Python's gzip.compress)",
      "models": {}}
  start = time.time()
  with tempfile.TemporaryDirectory(prefix="mot_peer_") as folder:
    for name in FLAGS.models:
      report["models"][name] = run_model(tf, keras, tfmot, name, data, folder)
      report["seconds"] = time.time() - start
      if FLAGS.output_json:
        fileio.write_json(FLAGS.output_json, report)
  print("done in %.0f s" % (time.time() - start))


if __name__ == "__main__":
  app.run(main)
