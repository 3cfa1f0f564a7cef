"""Maps a model name to its network function.

  network_fn = nets_factory.get_network_fn("mobilenet_v1",
                                           width_multiplier=0.5)
  logits, end_points = network_fn(images, num_classes=10, is_training=True)

The returned function builds the network under variable scope
`scope or name` (e.g. `cnn_student/conv1/kernel`).
"""

import collections
import inspect

from distill_v1 import errors
from distill_v1.models import cnn
from distill_v1.models import mlp
from distill_v1.models import mobilenet_v1

_NETWORKS = collections.OrderedDict([
    ("mlp_teacher", mlp.mlp_teacher),
    ("mlp_student", mlp.mlp_student),
    ("cnn_teacher", cnn.cnn_teacher),
    ("cnn_student", cnn.cnn_student),
    ("mobilenet_v1", mobilenet_v1.mobilenet_v1),
])

# Arguments every network takes; the rest of its signature are its options.
_CALL_ARGS = ("images", "num_classes", "is_training", "scope")


def network_names():
  """The known model names, in a stable order."""
  return list(_NETWORKS)


def _lookup(name):
  if name not in _NETWORKS:
    raise errors.ConfigError("Unknown model %r; known models: %s" %
                             (name, ", ".join(_NETWORKS)))
  return _NETWORKS[name]


def network_options(name):
  """The options of network `name` and their defaults.

  Args:
    name: a model name from `network_names()`.

  Returns:
    An OrderedDict option name -> default value (empty if none).

  Raises:
    ConfigError: unknown name.
  """
  fn = _lookup(name)
  options = collections.OrderedDict()
  for param in inspect.signature(fn).parameters.values():
    if param.name not in _CALL_ARGS:
      options[param.name] = param.default
  return options


def get_network_fn(name, **options):
  """Returns `fn(images, num_classes, is_training=False, scope=None)`.

  Args:
    name: a model name from `network_names()`.
    **options: network options, e.g. width_multiplier=0.5 for mobilenet_v1
      (see `network_options(name)`), forwarded on every call.

  Returns:
    A function returning (logits [batch, num_classes], end_points), building
    its variables under variable scope `scope or name`.

  Raises:
    ConfigError: unknown name, or an option the network does not take.
  """
  fn = _lookup(name)
  known = network_options(name)
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise errors.ConfigError(
        "Model %r has no option(s) %s; its options are: %s" %
        (name, ", ".join(unknown), ", ".join(known) or "(none)"))

  def network_fn(images, num_classes, is_training=False, scope=None):
    return fn(images, num_classes, is_training=is_training,
              scope=scope or name, **options)

  network_fn.__name__ = fn.__name__
  network_fn.__doc__ = fn.__doc__
  network_fn.model_name = name
  network_fn.options = dict(options)
  return network_fn


def check_image_shape(image_shape):
  """Returns `image_shape` as a tuple (H, W, C) of ints.

  Raises:
    ConfigError: it is not three positive integers.
  """
  try:
    shape = tuple(int(d) for d in image_shape)
  except (TypeError, ValueError):
    shape = ()
  if len(shape) != 3 or min(shape) < 1:
    raise errors.ConfigError(
        "image_shape is %r, expected (height, width, channels) of positive "
        "integers" % (image_shape,))
  return shape
