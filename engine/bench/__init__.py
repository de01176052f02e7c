"""``lakescore bench``: measure a model on this machine and turn the rates into a plan.

One module per step: ``rows`` (what every contender scores), ``backends`` (which kernels
run here, compile times), ``native`` (the model's own library), ``measure`` (rows/s side
by side), ``end_to_end`` (a short run through the engine), ``plan`` (the projection),
``report`` and ``html`` (the outputs); ``runner`` calls them in order.
"""

from engine.bench.plan import Measured, project
from engine.bench.runner import BenchOptions, run_bench

__all__ = ["BenchOptions", "Measured", "project", "run_bench"]
