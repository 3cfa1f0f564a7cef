"""Tests for distill_v1.teachers.safe_loader.

One tiny `cnn_student` (8x8x1 images, 4 classes) is saved as a checkpoint with
its .meta graph, frozen to a .pb, exported as a TF1 and a TF2 SavedModel, and
rebuilt with a hostile op (WriteFile, PyFunc) that each loader must refuse
before anything of the file runs. `build_artifacts` is shared with
graph_teacher_test.py (built once per process).
"""

import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory
from distill_v1.teachers import checkpoint_teacher
from distill_v1.teachers import safe_loader

SIZE = 8
NUM_CLASSES = 4
MODEL = "cnn_student"
_CACHE = {}


def _student(images):
  logits, _ = nets_factory.get_network_fn(MODEL)(images, NUM_CLASSES)
  return logits


def _images_placeholder(shape=(None, SIZE, SIZE, 1), name="images"):
  return tf.compat.v1.placeholder(tf.float32, list(shape), name=name)


def _freeze(sess, graph, path, outputs=("logits",)):
  graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(
      sess, graph.as_graph_def(), list(outputs))
  with open(path, "wb") as f:
    f.write(graph_def.SerializeToString())
  return path


def _restore(sess, prefix):
  tf.compat.v1.train.Saver().restore(sess, prefix)


def _build_reference(root):
  """The checkpoint (+ .meta), a frozen .pb and a TF1 SavedModel."""
  paths = {}
  with tf.Graph().as_default() as graph:
    tf.compat.v1.set_random_seed(7)
    images = _images_placeholder()
    logits = tf.identity(_student(images), name="logits")
    variables = tf.compat.v1.global_variables()
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      # Non-zero biases, so a bias that is not restored changes the logits.
      rng = np.random.RandomState(0)
      for var in variables:
        if var.op.name.endswith("bias"):
          var.load(rng.uniform(-0.5, 0.5, var.shape.as_list()), sess)
      weights = {v.op.name: sess.run(v) for v in variables}
      ckpt_dir = os.path.join(root, "ckpt")
      paths["meta_prefix"] = tf.compat.v1.train.Saver().save(
          sess, os.path.join(ckpt_dir, "model.ckpt"), global_step=1)
      paths["ckpt_dir"] = ckpt_dir
      paths["meta_file"] = paths["meta_prefix"] + ".meta"
      paths["frozen_pb"] = _freeze(sess, graph,
                                   os.path.join(root, "frozen.pb"))
      builder = tf.compat.v1.saved_model.Builder(
          os.path.join(root, "tf1_saved_model"))
      signature = tf.compat.v1.saved_model.predict_signature_def(
          inputs={"images": images},
          outputs={"logits": logits, "probabilities": tf.nn.softmax(logits)})
      builder.add_meta_graph_and_variables(
          sess, [tf.compat.v1.saved_model.tag_constants.SERVING],
          signature_def_map={"serving_default": signature})
      builder.save()
      paths["tf1_saved_model"] = os.path.join(root, "tf1_saved_model")
  text_path = os.path.join(root, "frozen.pbtxt")
  graph_def = tf.compat.v1.GraphDef()
  with open(paths["frozen_pb"], "rb") as f:
    graph_def.ParseFromString(f.read())
  with open(text_path, "w") as f:
    f.write(str(graph_def))
  paths["frozen_pbtxt"] = text_path
  return paths, weights


def tf2_logits_fn(weights):
  """cnn_student written with tf.nn ops on a dict of weights (any tensors)."""

  def forward(images):
    net = images
    for layer in ("conv1", "conv2"):
      net = tf.nn.conv2d(net, weights["%s/%s/kernel" % (MODEL, layer)], 1,
                         "SAME")
      net = tf.nn.relu(tf.nn.bias_add(
          net, weights["%s/%s/bias" % (MODEL, layer)]))
      net = tf.nn.max_pool2d(net, 2, 2, "VALID")
    net = tf.reshape(net, [-1, (SIZE // 4) * (SIZE // 4) * 32])
    return tf.nn.bias_add(tf.matmul(net, weights[MODEL + "/logits/kernel"]),
                          weights[MODEL + "/logits/bias"])

  return forward


class _Tf2Teacher(tf.Module):
  """A TF2 module computing cnn_student's logits from tf.Variables."""

  def __init__(self, weights, write_to=None):
    super().__init__()
    self.weights = {name: tf.Variable(value, name=name.replace("/", "_"))
                    for name, value in sorted(weights.items())}
    self._forward = tf2_logits_fn(self.weights)
    self._write_to = write_to

  @tf.function(input_signature=[
      tf.TensorSpec([None, SIZE, SIZE, 1], tf.float32, name="images")])
  def serve(self, images):
    if self._write_to:
      tf.io.write_file(self._write_to, "pwned")
    logits = self._forward(images)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


def _save_tf2(weights, path, write_to=None):
  module = _Tf2Teacher(weights, write_to)
  tf.saved_model.save(module, path,
                      signatures={"serving_default": module.serve})
  return path


def _build_adapted(root, prefix, kind):
  """cnn_student behind a different input: flat 0-255 pixels or NCHW."""
  with tf.Graph().as_default() as graph:
    if kind == "flat":
      pixels = _images_placeholder((None, SIZE * SIZE), name="flat_pixels")
      images = tf.reshape(pixels / 255.0, [-1, SIZE, SIZE, 1])
    else:
      pixels = _images_placeholder((None, 1, SIZE, SIZE), name="nchw_images")
      images = tf.transpose(pixels, [0, 2, 3, 1])
    tf.identity(_student(images), name="logits")
    with tf.compat.v1.Session() as sess:
      _restore(sess, prefix)
      return _freeze(sess, graph, os.path.join(root, kind + ".pb"))


def _build_hostile(root, prefix, kind):
  """cnn_student whose `logits` also depend on a hostile op.

  Returns:
    (path, file the hostile op would write or None).
  """
  target = os.path.join(root, "pwned_%s.txt" % kind)
  with tf.Graph().as_default() as graph:
    images = _images_placeholder()
    logits = _student(images)
    if kind == "pyfunc":
      logits = tf.compat.v1.py_func(lambda x: x, [logits], tf.float32)
      target = None
    elif kind == "function":
      @tf.function
      def leak(x):
        tf.io.write_file(target, "pwned")
        return x * 1.0
      logits = leak(logits)
    elif kind == "unreachable":
      tf.io.write_file(target, "pwned", name="unused_write")
    else:
      with tf.control_dependencies([
          tf.io.write_file(target, "pwned", name="evil/write")]):
        logits = tf.identity(logits)
    tf.identity(logits, name="logits")
    with tf.compat.v1.Session() as sess:
      _restore(sess, prefix)
      if kind == "meta":
        path = tf.compat.v1.train.Saver().save(
            sess, os.path.join(root, "hostile_ckpt", "model.ckpt"))
      else:
        # Keep the unreachable write in the file: only the loader may drop it.
        outputs = ["logits"] + (["unused_write"] if kind == "unreachable"
                                else [])
        path = _freeze(sess, graph, os.path.join(root, "hostile_%s.pb" %
                                                 kind), outputs)
  return path, target


def _build_tf1_saved_model_with_init_op(root, prefix):
  """A TF1 SavedModel whose main_op writes a file (a TF1 loader runs it).

  Returns:
    (directory, file the main_op would write).
  """
  target = os.path.join(root, "pwned_main_op.txt")
  directory = os.path.join(root, "tf1_saved_model_main_op")
  with tf.Graph().as_default():
    images = _images_placeholder()
    logits = tf.identity(_student(images), name="logits")
    main_op = tf.io.write_file(target, "pwned", name="main_op_write")
    with tf.compat.v1.Session() as sess:
      _restore(sess, prefix)
      builder = tf.compat.v1.saved_model.Builder(directory)
      builder.add_meta_graph_and_variables(
          sess, [tf.compat.v1.saved_model.tag_constants.SERVING],
          signature_def_map={
              "serving_default": tf.compat.v1.saved_model.predict_signature_def(
                  inputs={"images": images}, outputs={"logits": logits})},
          main_op=main_op)
      builder.save()
  return directory, target


def _build_iterator_meta(root, prefix):
  """A meta checkpoint whose images come from a tf.data iterator."""
  with tf.Graph().as_default():
    dataset = tf.data.Dataset.from_tensors(
        np.zeros([2, SIZE, SIZE, 1], np.float32))
    images = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    tf.identity(_student(images), name="logits")
    with tf.compat.v1.Session() as sess:
      _restore(sess, prefix)
      return tf.compat.v1.train.Saver().save(
          sess, os.path.join(root, "iterator_ckpt", "model.ckpt"))


def build_artifacts(root):
  """Builds every model file once per process; returns a dict name -> path.

  Keys: meta_prefix, meta_file, ckpt_dir, frozen_pb, frozen_pbtxt,
  tf1_saved_model, tf2_saved_model, flat_pb, nchw_pb, iterator_meta,
  hostile_{pb,meta,function,tf2,pyfunc,unreachable} (paths) and
  target_{...} (files the hostile ops would write), and "weights".
  """
  if "paths" in _CACHE:
    return _CACHE["paths"]
  os.makedirs(root, exist_ok=True)
  paths, weights = _build_reference(root)
  prefix = paths["meta_prefix"]
  paths["tf2_saved_model"] = _save_tf2(
      weights, os.path.join(root, "tf2_saved_model"))
  for kind in ("flat", "nchw"):
    paths[kind + "_pb"] = _build_adapted(root, prefix, kind)
  paths["iterator_meta"] = _build_iterator_meta(root, prefix)
  paths["main_op_saved_model"], paths["target_main_op"] = (
      _build_tf1_saved_model_with_init_op(root, prefix))
  for kind in ("pb", "meta", "function", "pyfunc", "unreachable"):
    paths["hostile_" + kind], paths["target_" + kind] = _build_hostile(
        root, prefix, kind)
  paths["target_tf2"] = os.path.join(root, "pwned_tf2.txt")
  paths["hostile_tf2"] = _save_tf2(
      weights, os.path.join(root, "hostile_tf2"),
      write_to=paths["target_tf2"])
  for key, target in paths.items():
    assert not (key.startswith("target_") and target and
                os.path.exists(target)), "building wrote " + target
  paths["weights"] = weights
  _CACHE["paths"] = paths
  return paths


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
  return build_artifacts(str(tmp_path_factory.getbasetemp() / "models"))


def test_images(batch=5, seed=0):
  """Not a test: images float32 [batch, 8, 8, 1] in [0, 1]."""
  return np.random.RandomState(seed).uniform(
      size=(batch, SIZE, SIZE, 1)).astype(np.float32)


test_images.__test__ = False


def reference_logits(prefix, images):
  """cnn_student's logits from the checkpoint, via the checkpoint teacher."""
  with tf.Graph().as_default():
    inputs = _images_placeholder()
    teacher = checkpoint_teacher.build_checkpoint_teacher(
        inputs, MODEL, prefix, NUM_CLASSES)
    with tf.compat.v1.Session() as sess:
      teacher.init_fn(sess)
      return sess.run(teacher.logits, {inputs: images})


def _frozen_logits(frozen, images):
  with tf.Graph().as_default():
    inputs = _images_placeholder()
    logits = safe_loader.import_frozen_graph(frozen, inputs, "teacher")
    with tf.compat.v1.Session() as sess:
      return sess.run(logits, {inputs: images})


def _op_types(graph_def):
  ops = set(n.op for n in graph_def.node)
  for function in graph_def.library.function:
    ops.update(n.op for n in function.node_def)
  return ops


@pytest.mark.parametrize("key,kind", [
    ("frozen_pb", "frozen"), ("frozen_pbtxt", "frozen"),
    ("meta_prefix", "meta_checkpoint"), ("meta_file", "meta_checkpoint"),
    ("ckpt_dir", "meta_checkpoint"), ("tf1_saved_model", "saved_model"),
    ("tf2_saved_model", "saved_model")])
def test_every_kind_freezes_to_the_checkpoints_logits(artifacts, key, kind):
  frozen = safe_loader.load_frozen_graph(artifacts[key])
  assert frozen.kind == kind
  assert frozen.source == artifacts[key]
  assert frozen.input_shape == [None, SIZE, SIZE, 1]
  assert frozen.num_classes == NUM_CLASSES
  assert frozen.input_name.endswith(":0")
  ops = _op_types(frozen.graph_def)
  assert ops <= safe_loader.ALLOWED_OPS, ops - safe_loader.ALLOWED_OPS
  assert not ops & safe_loader.VARIABLE_OPS  # Frozen: constants only.
  images = test_images()
  np.testing.assert_allclose(
      _frozen_logits(frozen, images),
      reference_logits(artifacts["meta_prefix"], images), rtol=1e-5,
      atol=1e-5)


def test_saved_model_names_resolve_from_the_signature(artifacts):
  frozen = safe_loader.load_frozen_graph(
      artifacts["tf1_saved_model"], input_name="images",
      output_names="probabilities")
  probabilities = _frozen_logits(frozen, test_images())
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  frozen = safe_loader.load_frozen_graph(artifacts["tf2_saved_model"],
                                         output_names=["probabilities"])
  np.testing.assert_allclose(_frozen_logits(frozen, test_images()).sum(1),
                             1.0, rtol=1e-5)


def test_meta_graph_fed_by_an_iterator_gets_a_placeholder(artifacts):
  with pytest.raises(errors.ConfigError, match=r"depends on 0 placeholders"
                     r".*--teacher_input"):
    safe_loader.load_frozen_graph(artifacts["iterator_meta"])
  frozen = safe_loader.load_frozen_graph(artifacts["iterator_meta"],
                                         input_name="IteratorGetNext")
  ops = _op_types(frozen.graph_def)
  assert "IteratorGetNext" not in ops and "Placeholder" in ops
  images = test_images()
  np.testing.assert_allclose(
      _frozen_logits(frozen, images),
      reference_logits(artifacts["meta_prefix"], images), rtol=1e-5,
      atol=1e-5)


@pytest.mark.parametrize("kind,node", [
    ("pb", "node 'evil/write'"), ("meta", "node 'evil/write'"),
    ("function", "in function '__inference_leak"),
    ("tf2", "in function '__inference_serve")])
def test_write_file_is_refused_before_it_runs(artifacts, kind, node):
  target = artifacts["target_" + kind]
  with pytest.raises(errors.UnsafeGraphError) as raised:
    safe_loader.load_frozen_graph(artifacts["hostile_" + kind])
  message = str(raised.value)
  assert message.startswith("teacher graph %s: op WriteFile (" %
                            artifacts["hostile_" + kind]), message
  assert node in message
  assert "is not on the allow-list of pure tensor ops" in message
  assert "WriteFile does file or network I/O" in message
  assert "--allow_unsafe_teacher_ops" in message
  assert not os.path.exists(target)


def test_py_func_is_refused(artifacts):
  with pytest.raises(errors.UnsafeGraphError,
                     match=r"op PyFunc \(node '.*'\).*PyFunc runs Python"):
    safe_loader.load_frozen_graph(artifacts["hostile_pyfunc"])


@pytest.mark.parametrize("kind", ["pb", "meta"])
def test_allow_unsafe_ops_loads_the_same_graph(artifacts, kind, caplog):
  target = artifacts["target_" + kind]
  with caplog.at_level("WARNING", logger=safe_loader.__name__):
    frozen = safe_loader.load_frozen_graph(artifacts["hostile_" + kind],
                                           allow_unsafe_ops=True)
  assert "WriteFile" in caplog.text and "outside the allow-list" in caplog.text
  assert "WriteFile" in _op_types(frozen.graph_def)
  assert not os.path.exists(target)  # Loading still runs nothing.
  images = test_images()
  np.testing.assert_allclose(
      _frozen_logits(frozen, images),
      reference_logits(artifacts["meta_prefix"], images), rtol=1e-5,
      atol=1e-5)
  # Running the graph runs the op: the refusal above was about a live op.
  assert os.path.exists(target)
  os.remove(target)


def test_unreachable_ops_are_neither_refused_nor_kept(artifacts):
  graph_def = tf.compat.v1.GraphDef()
  with open(artifacts["hostile_unreachable"], "rb") as f:
    graph_def.ParseFromString(f.read())
  assert "WriteFile" in _op_types(graph_def)
  frozen = safe_loader.load_frozen_graph(artifacts["hostile_unreachable"])
  assert "WriteFile" not in _op_types(frozen.graph_def)


def test_saved_models_own_save_and_restore_ops_are_not_refused(artifacts):
  for key in ("tf1_saved_model", "tf2_saved_model"):
    saved_model = tf.__internal__.saved_model.parse_saved_model(
        artifacts[key])
    ops = _op_types(saved_model.meta_graphs[0].graph_def)
    assert {"SaveV2", "RestoreV2"} <= ops, (key, ops)
    safe_loader.load_frozen_graph(artifacts[key])


def test_saved_model_versions_take_their_own_paths(artifacts):
  for key, is_tf2 in (("tf1_saved_model", False), ("tf2_saved_model", True)):
    saved_model = tf.__internal__.saved_model.parse_saved_model(
        artifacts[key])
    # pylint: disable-next=protected-access
    assert safe_loader._is_tf2(saved_model) == is_tf2


def test_tf1_saved_models_init_ops_never_run(artifacts):
  frozen = safe_loader.load_frozen_graph(artifacts["main_op_saved_model"])
  assert "WriteFile" not in _op_types(frozen.graph_def)
  images = test_images()
  np.testing.assert_allclose(
      _frozen_logits(frozen, images),
      reference_logits(artifacts["meta_prefix"], images), rtol=1e-5,
      atol=1e-5)
  assert not os.path.exists(artifacts["target_main_op"])


def test_allow_list_and_dangerous_ops_are_disjoint():
  assert not set(safe_loader.DANGEROUS_OPS) & safe_loader.ALLOWED_OPS
  assert not safe_loader.VARIABLE_OPS & safe_loader.ALLOWED_OPS
  for op in ("WriteFile", "ReadFile", "PyFunc", "EagerPyFunc", "SaveV2",
             "RestoreV2", "MatchingFiles", "CreateSummaryFileWriter"):
    assert op in safe_loader.DANGEROUS_OPS


def test_function_bodies_are_walked_recursively():
  with tf.Graph().as_default() as graph:

    @tf.function
    def inner(x):
      return tf.strings.length(tf.io.read_file("/etc/hostname")) + x

    @tf.function
    def outer(x):
      return inner(x) * 2

    inputs = tf.compat.v1.placeholder(tf.int32, [], name="x")
    tf.identity(outer(inputs), name="logits")
  names, entries, functions = safe_loader.reachable_subgraph(
      graph.as_graph_def(), ["logits"])
  assert "x" in names and len(functions) == 2
  unsafe = safe_loader.find_unsafe_ops(entries, function_names=functions)
  assert list(unsafe) == ["ReadFile", "StringLength"]
  assert "in function '__inference_inner" in unsafe["ReadFile"]


def test_missing_path():
  with pytest.raises(errors.DataError, match=r"teacher graph /nonexistent/"
                     r"model.pb not found: expected a frozen GraphDef"):
    safe_loader.load_frozen_graph("/nonexistent/model.pb")


def test_corrupt_pb(tmp_path):
  path = str(tmp_path / "corrupt.pb")
  with open(path, "wb") as f:
    f.write(np.random.RandomState(0).bytes(512))
  with pytest.raises(errors.DataError,
                     match=r"cannot parse .*corrupt.pb as a GraphDef"):
    safe_loader.load_frozen_graph(path)


def test_checkpoint_without_meta_graph(tmp_path, artifacts):
  folder = tmp_path / "weights_only"
  folder.mkdir()
  prefix = artifacts["meta_prefix"]
  for suffix in (".index", ".data-00000-of-00001"):
    with open(prefix + suffix, "rb") as src:
      (folder / ("model.ckpt-1" + suffix)).write_bytes(src.read())
  (folder / "checkpoint").write_text(
      'model_checkpoint_path: "model.ckpt-1"\n')
  with pytest.raises(errors.DataError, match=r"no \.meta graph.*"
                     r"--teacher_model with --teacher_checkpoint"):
    safe_loader.load_frozen_graph(str(folder))


def test_unknown_output_and_input_names_list_candidates(artifacts):
  with pytest.raises(errors.ConfigError,
                     match=r"has no output tensor 'scores'; candidate tensor "
                     r"names: logits:0"):
    safe_loader.load_frozen_graph(artifacts["frozen_pb"],
                                  output_names="scores")
  with pytest.raises(errors.ConfigError,
                     match=r"has no input tensor 'pixels'; candidate tensor "
                     r"names: images:0"):
    safe_loader.load_frozen_graph(artifacts["frozen_pb"], input_name="pixels")
  with pytest.raises(errors.ConfigError, match=r"has no output 'scores': "
                     r"signature 'serving_default' has the outputs logits, "
                     r"probabilities; other candidate tensor names: "
                     r"Softmax:0"):
    safe_loader.load_frozen_graph(artifacts["tf1_saved_model"],
                                  output_names="scores")
  with pytest.raises(errors.ConfigError, match=r"has no input 'pixels': "
                     r"signature 'serving_default' has the inputs images$"):
    safe_loader.load_frozen_graph(artifacts["tf2_saved_model"],
                                  input_name="pixels")


def test_output_that_ignores_the_input_is_refused(artifacts):
  with pytest.raises(errors.ConfigError,
                     match=r"output does not depend on the input images:0"):
    safe_loader.load_frozen_graph(
        artifacts["frozen_pb"], input_name="images",
        output_names="cnn_student/logits/kernel")


def test_checkpoint_of_another_shape_is_named(tmp_path, artifacts):
  with tf.Graph().as_default():
    images = _images_placeholder()
    logits, _ = nets_factory.get_network_fn(MODEL)(images, NUM_CLASSES + 1)
    tf.identity(logits, name="logits")
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      prefix = tf.compat.v1.train.Saver().save(sess,
                                               str(tmp_path / "five.ckpt"))
  # The 4-class graph over the 5-class weights.
  with open(artifacts["meta_prefix"] + ".meta", "rb") as src:
    with open(prefix + ".meta", "wb") as dst:
      dst.write(src.read())
  with pytest.raises(errors.CheckpointError,
                     match=r"does not fit teacher graph .*cnn_student/"
                     r"logits/bias has shape \[5\] in the checkpoint, the "
                     r"graph expects \[4\]"):
    safe_loader.load_frozen_graph(prefix)


def test_reference_variables_of_old_tf1_graphs(tmp_path):
  rng = np.random.RandomState(3)
  kernel = rng.randn(6, 3).astype(np.float32)
  bias = rng.randn(3).astype(np.float32)
  with tf.Graph().as_default():
    inputs = tf.compat.v1.placeholder(tf.float32, [None, 6], name="x")
    w = tf.compat.v1.Variable(kernel, use_resource=False, name="w")
    b = tf.compat.v1.Variable(bias, use_resource=False, name="b")
    assert w.op.type == "VariableV2"
    tf.nn.bias_add(tf.matmul(inputs, w), b, name="logits")
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ref"))
  frozen = safe_loader.load_frozen_graph(prefix)
  assert frozen.input_shape == [None, 6] and frozen.num_classes == 3
  x = rng.randn(4, 6).astype(np.float32)
  with tf.Graph().as_default():
    inputs = tf.constant(x)
    logits = safe_loader.import_frozen_graph(frozen, inputs, "teacher")
    with tf.compat.v1.Session() as sess:
      np.testing.assert_allclose(sess.run(logits), x.dot(kernel) + bias,
                                 rtol=1e-5)
