"""One getter and state per graph for the compression wrappers."""

from distill_v1.compat import tf
from distill_v1.compression import per_graph


def test_same_graph_reuses_and_a_new_graph_gets_fresh_state():
  made = []

  def factory():
    made.append(object())
    return (lambda getter, *a, **k: getter(*a, **k)), made[-1]

  cache = per_graph.PerGraph(factory)
  with tf.Graph().as_default():
    assert cache.state() is None
    first = cache.get()
    assert cache.get() is not None and cache.get()[1] is first[1]
    assert cache.state() is first[1]
  with tf.Graph().as_default():
    assert cache.state() is None
    second = cache.get()
    assert second[1] is not first[1]
  assert len(made) == 2
