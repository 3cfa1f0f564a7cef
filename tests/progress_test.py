"""Tests of distill_v1.training.progress with an injected clock."""

import io

import pytest

from distill_v1.training import progress


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"),
    (12.4, "12s"),
    (59.4, "59s"),
    (59.6, "1m00s"),
    (185, "3m05s"),
    (3599.6, "1h00m"),
    (3720, "1h02m"),
    (3 * 3600 + 59 * 60 + 59, "3h59m"),
    (100 * 3600, "100h00m"),
    (-5, "0s"),
])
def test_format_duration(seconds, text):
  assert progress.format_duration(seconds) == text


class _Clock(object):
  """A clock the test moves by hand."""

  def __init__(self, now=1000.0):
    self.now = now

  def __call__(self):
    return self.now


def test_examples_per_sec_and_eta():
  clock = _Clock()
  stream = io.StringIO()
  log = progress.Progress(total_steps=100, batch_size=10, stream=stream,
                          clock=clock)
  log.add_examples(120)
  log.add_examples(80)
  clock.now += 4.0
  assert log.examples_per_sec() == pytest.approx(50.0)
  # 80 steps * 10 examples left at 50 examples/s.
  line = log.line(20, "epoch 1/5", [("loss", 0.41), ("accuracy", 0.875)])
  assert line == ("epoch 1/5 step 20/100  loss 0.4100  accuracy 0.8750  "
                  "50 ex/s  ETA 16s")
  # line() started a new window: no examples yet, so no rate and no ETA.
  assert log.examples_per_sec() == 0.0
  clock.now += 1.0
  assert log.line(21, "epoch 1/5", []) == (
      "epoch 1/5 step 21/100  0 ex/s  ETA ?")
  log.write("hello")
  assert stream.getvalue() == "hello\n"


def test_large_rates_and_long_etas():
  clock = _Clock()
  log = progress.Progress(total_steps=100000, batch_size=128,
                          stream=io.StringIO(), clock=clock)
  log.add_examples(24690)
  clock.now += 2.0  # 12,345 examples/s
  line = log.line(1000, "epoch 2/9", [("loss", 1.0)])
  # 99,000 steps * 128 / 12,345 = 1026.49 s.
  assert line.endswith("loss 1.0000  12,345 ex/s  ETA 17m06s")


def test_restart_window_forgets_earlier_examples():
  clock = _Clock()
  log = progress.Progress(total_steps=10, batch_size=1, stream=io.StringIO(),
                          clock=clock)
  log.add_examples(1000)
  clock.now += 100.0  # e.g. an evaluation
  log.restart_window()
  log.add_examples(30)
  clock.now += 3.0
  assert log.examples_per_sec() == pytest.approx(10.0)
  assert log.line(10, "e", []).endswith("10 ex/s  ETA 0s")
