"""The benchmark suite behind ``rlmetric bench``: every serious surrogate against the
policy-gradient trainer, on the same models, splits and seeds.

Needs the ``bench`` extra (scikit-learn for data and reference metrics, matplotlib for plots):
``pip install 'rlmetric[bench]'``.
"""

from rlmetric.bench.methods import METHODS, Method
from rlmetric.bench.report import markdown_table, summarize
from rlmetric.bench.step_nets import STEP_NETWORK_METHODS
from rlmetric.bench.suite import run_suite
from rlmetric.bench.tasks import TASKS, Task, make_shapes

# the step-network methods live in their own module; they join the one table of methods here
METHODS.update({method.name: method for method in STEP_NETWORK_METHODS})

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
