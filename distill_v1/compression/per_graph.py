"""A custom getter and its state, made once per graph.

A compression wrapper (pruning masks, fake quantization) is called several
times while one graph is built — the training tower, then each evaluation
tower with variable reuse — and must hand every call the same getter and
state; a new graph (a new run, a scratch build) gets fresh ones.
"""

import weakref

from distill_v1.compat import tf


class PerGraph(object):
  """Caches `factory()` -> (custom_getter, state) for the default graph."""

  def __init__(self, factory):
    self._factory = factory
    self._graph = None
    self._getter = None
    self._state = None

  def get(self):
    """(getter, state) of the default graph, made on first use."""
    graph = tf.compat.v1.get_default_graph()
    if self._graph is None or self._graph() is not graph:
      self._getter, self._state = self._factory()
      self._graph = weakref.ref(graph)
    return self._getter, self._state

  def state(self):
    """The default graph's state, or None before anything was built in it."""
    if self._graph is None or (
        self._graph() is not tf.compat.v1.get_default_graph()):
      return None
    return self._state
