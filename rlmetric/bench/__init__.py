"""The benchmark suite behind ``rlmetric bench``: every serious surrogate against the
policy-gradient trainer, on the same models, splits and seeds.

Needs the ``bench`` extra (scikit-learn for data and reference metrics, matplotlib for plots):
``pip install 'rlmetric[bench]'``.
"""

from rlmetric.bench.methods import METHODS, Method
from rlmetric.bench.report import markdown_table, summarize
from rlmetric.bench.suite import run_suite
from rlmetric.bench.tasks import TASKS, Task, make_shapes

__all__ = [
    "METHODS",
    "Method",
    "TASKS",
    "Task",
    "make_shapes",
    "markdown_table",
    "run_suite",
    "summarize",
]
