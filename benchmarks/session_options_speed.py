r"""Examples/sec of training steps under each session option, interleaved.

Chooses the defaults of --intra_op_threads / --inter_op_threads and tells
whether --xla and --precision=bfloat16 pay: for each case (a model trained
alone, or a student distilled from a teacher), every option set is timed in
turn, `--repeats` times round-robin, in one process over one graph per
option set; each timing is `--steps` steps after 30 warm-up steps of the
training loop's own graph (`loop.build_train_graph`, the step fetching its
loss through `sess.make_callable` as the loop does; "sessrun" and "nofused"
option sets time `sess.run` and --nofused_updates instead, "ininput" a
distillation case with its teachers in the input pipeline, "native" the
step with --nofast_gradients).
TF_XLA_FLAGS=--tf_xla_cpu_global_jit is set before TensorFlow is imported
(when run as a script), so the xla rows compile; the others leave
global_jit_level off and do not.

Throughput does not depend on the weights' values: a teacher is any
checkpoint of the right model (`--teacher_dir/<model>`, or a freshly
initialised one written there when missing).

Usage:
  python benchmarks/session_options_speed.py \
      --output_json=docs/benchmarks/session_options.json
"""

import collections
import functools
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scripts import common_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

if __name__ == "__main__":
  # Before TensorFlow is imported, and only when run as a script: a test that
  # imports this module for parse_option must not turn on the global JIT.
  common_flags.xla_environment()

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

# pylint: disable=g-import-not-at-top,wrong-import-position
from distill_v1 import checkpoints
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.data import datasets
from distill_v1.data import input_pipeline
from distill_v1.models import nets_factory
from distill_v1.teachers import checkpoint_teacher
from distill_v1.training import distillation
from distill_v1.training import loop
from distill_v1.training import session_options
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", ["mlp_student", "cnn_teacher",
                            "cnn_student<cnn_teacher",
                            "mlp_student<mlp_teacher"],
                  "`model` trains it alone; `student<teacher` distills.")
flags.DEFINE_list("options", ["0/0", "2/1", "1/2", "1/1", "0/0/xla",
                              "0/0/bfloat16"],
                  "intra/inter[/xla][/bfloat16] option sets (0 = "
                  "TensorFlow's choice).")
flags.DEFINE_integer("repeats", 5, "Round-robin repeats.", lower_bound=1)
flags.DEFINE_integer("steps", 60, "Timed steps per repeat.", lower_bound=1)
flags.DEFINE_string("teacher_dir", "/work/runs/speed_teachers",
                    "Where the teachers' checkpoints are (or are made).")
flags.DEFINE_integer("trace_steps", 10, "Steps traced with "
                     "tf.compat.v1.RunMetadata (full trace) under the first "
                     "option set, for the per-op time table; 0 = none.",
                     lower_bound=0)
flags.DEFINE_string("output_json", None, "Where results go.")

LEARNING_RATES = {"mlp": 0.1, "cnn": 0.05}


def parse_option(text):
  """"2/1/xla" -> dict(intra_op_threads=2, inter_op_threads=1, xla=True, ...).

  Besides xla and bfloat16, "nofused" builds the step with
  --nofused_updates, "sessrun" runs it with `sess.run(fetches)` instead
  of the training loop's `sess.make_callable(fetches)`, "ininput" runs a
  distillation case's teachers in the input pipeline (scripts/distill.py's
  --teacher_in_input) instead of in the step, and "native" builds it with
  --nofast_gradients (TensorFlow's own Conv2D and MatMul gradients).
  """
  parts = text.split("/")
  return {"intra_op_threads": int(parts[0]), "inter_op_threads": int(parts[1]),
          "xla": "xla" in parts[2:],
          "precision": "bfloat16" if "bfloat16" in parts[2:] else "float32",
          "fused_updates": "nofused" not in parts[2:],
          "callable": "sessrun" not in parts[2:],
          "teacher_in_input": "ininput" in parts[2:],
          "fast_gradients": "native" not in parts[2:]}


def _teacher_checkpoint(model, splits):
  """A checkpoint of `model` under --teacher_dir (made if missing)."""
  train_dir = os.path.join(FLAGS.teacher_dir, model)
  if checkpoints.latest_checkpoint(train_dir) is None:
    network_fn = nets_factory.get_network_fn(model)
    loop.train(loop.classifier_model_fn(network_fn, splits.num_classes,
                                        model), splits,
               loop.TrainConfig(train_dir=train_dir, max_steps=1),
               checkpoints.make_model_spec(model, {}, splits, splits.name))
  return train_dir


def _model_fn(case, splits, teacher_in_input=False):
  """(model_fn, train_extras) of `case` for loop.build_train_graph."""
  student, _, teacher = case.partition("<")
  network_fn = nets_factory.get_network_fn(student)
  if not teacher:
    return (loop.classifier_model_fn(network_fn, splits.num_classes, student),
            None)
  builders = [functools.partial(
      checkpoint_teacher.build_checkpoint_teacher, model=teacher,
      checkpoint=_teacher_checkpoint(teacher, splits),
      num_classes=splits.num_classes)]
  extras = None
  if teacher_in_input:
    builders, extras = distillation.teacher_extras(builders)
  return distillation.distillation_model_fn(
      lambda images, num_classes, is_training, scope: network_fn(
          images, num_classes, is_training=is_training, scope=scope),
      splits.num_classes, student, builders, temperature=8.0,
      alpha=0.5), extras


class _Timer(object):
  """One case's graph and session under one option set."""

  def __init__(self, case, splits, option):
    self.graph = tf.Graph()
    fused_updates = option.pop("fused_updates")
    use_callable = option.pop("callable")
    teacher_in_input = option.pop("teacher_in_input")
    fast_gradients = option.pop("fast_gradients")
    with self.graph.as_default():
      family = case.partition("<")[0].split("_")[0]
      config = loop.TrainConfig(train_dir="unused", epochs=10,
                                learning_rate=LEARNING_RATES[family],
                                fused_updates=fused_updates,
                                fast_gradients=fast_gradients)
      model_fn, extras = _model_fn(case, splits, teacher_in_input)
      g = loop.build_train_graph(model_fn, splits, config,
                                 train_extras=extras)
      self.fetch = [g.train_op, g.scalars["loss"]]
      self.sess = tf.compat.v1.Session(
          graph=self.graph, config=session_options.config_proto(**option))
      self.sess.run(tf.compat.v1.global_variables_initializer())
      for handles in [g.train_input] + [t.input for _, t in g.eval_towers]:
        input_pipeline.initialize_data(self.sess, handles)
      if g.outputs.init_fn is not None:
        g.outputs.init_fn(self.sess)
      self.train_input = g.train_input
      input_pipeline.start_epoch(self.sess, g.train_input, 0)
      self.batch_size = config.batch_size
      self.run_step = (self.sess.make_callable(self.fetch) if use_callable
                       else functools.partial(self.sess.run, self.fetch))
      self.steps(30)

  def steps(self, count):
    for _ in range(count):
      self.run_step()

  def trace(self, count, top=12):
    """Top ops by summed time over `count` traced steps: [(op kind, %, us)].

    The op kind is the first name-scope component and the kernel's type, e.g.
    `gradients:_MklNativeConv2DBackpropFilter`.
    """
    totals = collections.Counter()
    for _ in range(count):
      metadata = tf.compat.v1.RunMetadata()
      self.sess.run(self.fetch, options=tf.compat.v1.RunOptions(
          trace_level=tf.compat.v1.RunOptions.FULL_TRACE),
                    run_metadata=metadata)
      for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
          label = node.timeline_label
          kind = (label.split(" = ", 1)[1].split("(")[0] if " = " in label
                  else node.node_name)
          totals[node.node_name.split("/")[0] + ":" + kind] += (
              node.all_end_rel_micros / float(count))
    total = sum(totals.values()) or 1.0
    return [(k, 100.0 * v / total, v) for k, v in totals.most_common(top)]

  def examples_per_sec(self, count):
    start = time.perf_counter()
    self.steps(count)
    return count * self.batch_size / (time.perf_counter() - start)


def measure(case, splits):
  """{option: [examples/sec per repeat]}, round-robin over the options."""
  timers = {o: _Timer(case, splits, parse_option(o)) for o in FLAGS.options}
  rates = {o: [] for o in FLAGS.options}
  # The epoch has 468 full steps; restart it before it can run out.
  steps_used = {o: 30 for o in FLAGS.options}
  for _ in range(FLAGS.repeats):
    for option, timer in timers.items():
      if steps_used[option] + FLAGS.steps > 460:
        with timer.graph.as_default():
          input_pipeline.start_epoch(timer.sess, timer.train_input, 1)
        steps_used[option] = 0
      rates[option].append(timer.examples_per_sec(FLAGS.steps))
      steps_used[option] += FLAGS.steps
  trace = (timers[FLAGS.options[0]].trace(FLAGS.trace_steps)
           if FLAGS.trace_steps else [])
  for timer in timers.values():
    timer.sess.close()
  return rates, trace


def main(argv):
  del argv
  splits = datasets.load_dataset("fashion_mnist")
  results = {"repeats": FLAGS.repeats, "steps": FLAGS.steps,
             "load_average_before": os.getloadavg(), "cases": {}}
  for case in FLAGS.cases:
    rates, trace = measure(case, splits)
    base = float(np.median(rates[FLAGS.options[0]]))
    row = {}
    for option, values in rates.items():
      median = float(np.median(values))
      row[option] = {"median": median, "min": min(values), "max": max(values),
                     "values": values, "ratio_vs_%s" % FLAGS.options[0]:
                     median / base}
      print("%-26s %-14s %8s ex/s (%s-%s)  %.2fx" % (
          case, option, format(int(median), ","), format(int(min(values)),
                                                         ","),
          format(int(max(values)), ","), median / base), flush=True)
    for kind, percent, micros in trace:
      print("  %5.1f%% %8.0f us/step  %s" % (percent, micros, kind))
    row["trace_top_ops"] = [{"op": k, "percent": p, "us_per_step": u}
                            for k, p, u in trace]
    results["cases"][case] = row
  results["load_average_after"] = os.getloadavg()
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, results)


if __name__ == "__main__":
  app.run(main)
