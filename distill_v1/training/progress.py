"""Progress lines people can follow: step, loss, examples/sec and ETA."""

import sys
import time


def format_duration(seconds):
  """Formats seconds as `1h02m`, `3m05s` or `12s`."""
  seconds = max(0, int(round(seconds)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return "%dh%02dm" % (hours, minutes)
  if minutes:
    return "%dm%02ds" % (minutes, secs)
  return "%ds" % secs


class Progress(object):
  """Measures throughput over a window of steps and estimates the time left.

  Attributes:
    total_steps: steps of the whole run.
    batch_size: examples per step (the last batch of an epoch may be smaller;
      the throughput counts the examples actually reported).
  """

  def __init__(self, total_steps, batch_size, stream=None, clock=time.time):
    self.total_steps = total_steps
    self.batch_size = batch_size
    self._stream = stream or sys.stdout
    self._clock = clock
    self._window_start = clock()
    self._window_examples = 0

  def restart_window(self):
    """Starts a new throughput window (after an evaluation or a save)."""
    self._window_start = self._clock()
    self._window_examples = 0

  def add_examples(self, count):
    self._window_examples += count

  def examples_per_sec(self):
    elapsed = self._clock() - self._window_start
    return self._window_examples / elapsed if elapsed > 0 else 0.0

  def line(self, step, epoch_text, values):
    """Returns a progress line and starts a new window.

    Args:
      step: global step reached.
      epoch_text: e.g. "epoch 2/5".
      values: ordered (name, float) pairs, e.g. [("loss", 0.41)].
    """
    rate = self.examples_per_sec()
    steps_left = max(self.total_steps - step, 0)
    eta = steps_left * self.batch_size / rate if rate > 0 else float("nan")
    parts = ["%s step %d/%d" % (epoch_text, step, self.total_steps)]
    parts += ["%s %.4f" % (name, value) for name, value in values]
    parts.append("%s ex/s" % format(int(rate), ","))
    parts.append("ETA %s" % (format_duration(eta) if eta == eta else "?"))
    self.restart_window()
    return "  ".join(parts)

  def write(self, text):
    self._stream.write(text + "\n")
    self._stream.flush()
