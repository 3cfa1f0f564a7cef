"""Installs distill_v1 and its absl binaries (`distill-v1-<name>`).

TensorFlow comes through an extra so that pip never installs a second
TensorFlow beside one already present:
  pip install -e '.[cpu]'   # tensorflow-cpu
  pip install -e '.[gpu]'   # tensorflow (CUDA wheels on Linux)
  pip install -e .          # use the TensorFlow you already have
"""

import re

import setuptools

with open("distill_v1/__init__.py", encoding="utf-8") as f:
  VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

TF_RANGE = ">=2.16,<2.22"
BINARIES = ("train", "distill", "evaluate", "prune", "export", "predict",
            "compress", "quantize", "benchmark", "launch_local_cluster")

setuptools.setup(
    name="distill_v1",
    version=VERSION,
    description=("Knowledge distillation and model lightweighting in "
                 "TensorFlow 1-style graphs (tf.compat.v1)."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["distill_v1", "distill_v1.*"])
    + ["distill_v1_scripts"],
    package_dir={"distill_v1_scripts": "scripts"},
    install_requires=["numpy", "absl-py"],
    extras_require={
        "cpu": ["tensorflow-cpu" + TF_RANGE],
        "gpu": ["tensorflow" + TF_RANGE],
        "test": ["pytest", "matplotlib", "hypothesis"],
        "viz": ["tensorboard", "matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "distill-v1-%s = distill_v1_scripts.%s:run" % (name, name)
            for name in BINARIES
        ],
    },
)
