r"""Trains a model-zoo network on Fashion-MNIST (or MNIST, or your npz).

Usage:
  distill-v1-train --model=cnn_teacher --train_dir=/tmp/cnn_teacher \
      --epochs=15 --optimizer=momentum --learning_rate=0.01

On a cluster (`--ps_hosts --worker_hosts --job_name --task_index`, or
TF_CONFIG), parameter servers serve the variables and workers train together;
see README.md, "Running on a cluster".

Rerunning the same command resumes from the latest checkpoint in --train_dir.
Writes checkpoints, TensorBoard summaries, model_spec.json and metrics.json
into --train_dir. `--flagfile=FILE` reads flags from a file; `--helpfull`
explains every flag.
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


def train_model():
  """Loads the data, builds the network and runs the training loop."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.data import datasets
  from distill_v1.models import nets_factory
  from distill_v1.training import loop
  # pylint: enable=g-import-not-at-top
  role = common_flags.cluster_role()
  if common_flags.serve_if_parameter_server(role):
    return None
  common_flags.refuse_in_cluster(role, ["prune_target_sparsity",
                                        "pruning_hparams"])
  options = common_flags.model_options()
  network_fn = nets_factory.get_network_fn(FLAGS.model, **options)
  config = common_flags.training_config()
  loop.validate_config(config)
  splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir,
                                 validation_size=FLAGS.validation_size,
                                 seed=FLAGS.seed)
  spec = common_flags.model_spec(splits)
  model_fn = loop.classifier_model_fn(network_fn, splits.num_classes,
                                      scope=FLAGS.model)
  model_fn, pruning_hparams = common_flags.with_pruning(model_fn, splits)
  metrics = common_flags.train_on_role(role, model_fn, splits, config, spec)
  if metrics is None:  # A worker other than the chief.
    return None
  common_flags.strip_pruning_masks(pruning_hparams)
  common_flags.print_final(metrics)
  return metrics


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("train", train_model)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
