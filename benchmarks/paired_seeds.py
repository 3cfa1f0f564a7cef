r"""Ours beside the peer, paired by seed: a one-sided non-inferiority test.

Reads test accuracies per seed from our distillation JSON files
(benchmarks/distill_benchmark.py: {"seeds": {seed: {"test_accuracy": a}}}
or per-run rows) and the peer's (benchmarks/keras_peer.py: {"phases":
{"distill": {"test_accuracy": a}}}, or files collected as {"seeds": {seed:
{"distill": {...}}}}), pairs them by seed and tests, at one-sided level
`--level`, whether the mean difference ours - peer (in accuracy points) is
above `-margin`: the one-sided paired t lower bound

  mean(d) - t_{level, n-1} * sd(d) / sqrt(n) > -margin.

If it is, our accuracy is "equal or better" within the margin; if not, the
data do not show it (they do not show the opposite either). The margin and
the level are declared before the runs (docs/results.md).

Usage:
  python benchmarks/paired_seeds.py --ours=a.json,b.json --peer=c.json,... \
      --margin=0.3 --output_json=docs/benchmarks/paired.json
"""

import json
import math
import os
import sys

from absl import app
from absl import flags
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def define_flags():
  """The binary's flags (only when run as a script: tests import this)."""
  flags.DEFINE_list("ours", [], "Our JSON files (distill_benchmark.py).")
  flags.DEFINE_list("peer", [], "The peer's JSON files (keras_peer.py, or "
                    "collected per seed).")
  flags.DEFINE_float("margin", 0.3,
                     "Non-inferiority margin, accuracy points.")
  flags.DEFINE_float("level", 0.95, "One-sided confidence level.")
  flags.DEFINE_string("output_json", None, "Where to write the result.")


def student_t_cdf(x, df):
  """P(T <= x) for Student's t with `df` degrees of freedom (df >= 1)."""
  if df < 1:
    raise ValueError("df must be at least 1, got %r" % (df,))
  log_norm = (math.lgamma((df + 1) / 2.0) - math.lgamma(df / 2.0) -
              0.5 * math.log(df * math.pi))
  # The density's integral from 0 to |x| after the substitution t = tan(u),
  # u in [0, atan(|x|)]: the integrand is smooth and bounded, so Simpson's
  # rule on 4,000 intervals is accurate to ~1e-10, also for large |x|.
  upper = math.atan(abs(x))
  u = np.linspace(0.0, upper, 4001)
  t = np.tan(u)
  density = np.exp(log_norm - (df + 1) / 2.0 * np.log1p(t * t / df))
  integrand = density / np.cos(u) ** 2
  h = upper / 4000
  area = h / 3 * (integrand[0] + integrand[-1] + 4 * integrand[1:-1:2].sum() +
                  2 * integrand[2:-1:2].sum())
  return 0.5 + math.copysign(area, x)


def student_t_quantile(p, df):
  """The x with P(T <= x) = p, for 0.5 <= p < 1 (bisection on the CDF)."""
  if not 0.5 <= p < 1:
    raise ValueError("p must be in [0.5, 1), got %r" % (p,))
  low, high = 0.0, 1.0
  while student_t_cdf(high, df) < p:
    high *= 2
  for _ in range(100):
    mid = (low + high) / 2
    if student_t_cdf(mid, df) < p:
      low = mid
    else:
      high = mid
  return (low + high) / 2


def non_inferiority(ours, peer, margin, level=0.95):
  """The paired one-sided test of ours against the peer.

  Args:
    ours, peer: dicts seed -> test accuracy as a fraction (0.8943); only
      seeds in both are paired.
    margin: non-inferiority margin in accuracy points (0.3 = 0.3 points).
    level: one-sided confidence level.

  Returns:
    A dict: seeds, per-seed differences (points), n, mean, median, sd,
    standard error, the t quantile, the lower bound, wins / ties / losses
    of ours, both means, and `non_inferior` (lower bound > -margin).
  """
  seeds = sorted(set(ours) & set(peer), key=lambda s: int(s))
  if len(seeds) < 2:
    raise ValueError("need at least 2 paired seeds, got %d" % len(seeds))
  a = np.array([100.0 * ours[s] for s in seeds])
  b = np.array([100.0 * peer[s] for s in seeds])
  d = a - b
  n = len(d)
  sd = float(np.std(d, ddof=1))
  se = sd / math.sqrt(n)
  t = student_t_quantile(level, n - 1)
  lower = float(np.mean(d)) - t * se
  return {
      "seeds": [int(s) for s in seeds],
      "ours_points": [round(float(v), 4) for v in a],
      "peer_points": [round(float(v), 4) for v in b],
      "differences": [round(float(v), 4) for v in d],
      "n": n, "ours_mean": float(np.mean(a)), "peer_mean": float(np.mean(b)),
      "mean_difference": float(np.mean(d)),
      "median_difference": float(np.median(d)),
      "sd_difference": sd, "standard_error": se, "level": level,
      "t_quantile": t, "lower_bound": lower, "margin": margin,
      "wins": int(np.sum(d > 0)), "ties": int(np.sum(d == 0)),
      "losses": int(np.sum(d < 0)), "non_inferior": bool(lower > -margin),
  }


def read_accuracies(path):
  """seed (str) -> distilled test accuracy from one JSON file.

  Raises ValueError if the file holds none (for example a peer run that has
  finished its teacher phase only); benchmarks/paired_distill_runs.sh uses
  that to tell a finished run from an unfinished one.
  """
  with open(path) as f:
    data = json.load(f)
  found = {}
  if "distill" in data.get("phases", {}):  # one keras_peer.py run
    found[str(data["seed"])] = data["phases"]["distill"]["test_accuracy"]
  seeds = data.get("seeds")
  for seed, row in (seeds.items() if isinstance(seeds, dict) else ()):
    if "distill" in row:
      found[str(seed)] = row["distill"]["test_accuracy"]
    else:
      found[str(seed)] = row["test_accuracy"]
  for row in data.get("runs", []):  # distill_benchmark.py's comparison rows
    if row.get("kind") == "distilled":
      found[str(row["seed"])] = row["test_accuracy"]
  if not found:
    raise ValueError("%s holds no distilled test accuracy" % path)
  return found


def _read_all(paths):
  merged = {}
  for path in paths:
    for seed, accuracy in read_accuracies(path).items():
      if seed in merged and merged[seed] != accuracy:
        raise ValueError("seed %s has two accuracies (%s, %s); last in %s" %
                         (seed, merged[seed], accuracy, path))
      merged[seed] = accuracy
  return merged


def markdown(result):
  """The result as a table row list and a verdict line."""
  lines = ["| seed | ours | peer | ours - peer |",
           "| ---: | ---: | ---: | ---: |"]
  for s, a, b, d in zip(result["seeds"], result["ours_points"],
                        result["peer_points"], result["differences"]):
    lines.append("| %d | %.2f | %.2f | %+.2f |" % (s, a, b, d))
  lines.append("")
  lines.append(
      "n = %d; means %.2f%% (ours) and %.2f%% (peer); difference mean %+.3f, "
      "median %+.2f, sd %.3f, standard error %.3f; one-sided %d%% lower "
      "bound %+.3f (t = %.3f) against the margin -%.2f: %s; ours higher on "
      "%d, equal on %d, lower on %d seeds." % (
          result["n"], result["ours_mean"], result["peer_mean"],
          result["mean_difference"], result["median_difference"],
          result["sd_difference"], result["standard_error"],
          round(100 * result["level"]), result["lower_bound"],
          result["t_quantile"], result["margin"],
          "non-inferior" if result["non_inferior"] else "not shown",
          result["wins"], result["ties"], result["losses"]))
  return "\n".join(lines)


def main(argv):
  del argv
  result = non_inferiority(_read_all(FLAGS.ours), _read_all(FLAGS.peer),
                           FLAGS.margin, FLAGS.level)
  result["ours_files"] = FLAGS.ours
  result["peer_files"] = FLAGS.peer
  print(markdown(result))
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, result)


if __name__ == "__main__":
  define_flags()
  app.run(main)
