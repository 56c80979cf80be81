"""meio: multi-echelon inventory optimization for whole catalogs.

``read_network`` validates a catalog, ``optimize`` places safety stock with a model
(``single``, ``gsm``, ...), ``certify`` makes a plan's service hold in simulation,
``simulate`` checks any base-stock policy by Monte Carlo simulation, ``frontier`` prices a sweep
of service levels, and ``estimate`` turns demand and shipment histories into the stages and arcs
tables, all returning Polars frames.
"""

from meio.api import MODELS, Network, Plan, read_network, write_plan
from meio.certification import certify
from meio.estimate import Estimate, estimate, write_estimate
from meio.frontier import frontier
from meio.io.errors import InputError
from meio.pipeline import optimize
from meio.simulation import simulate

__version__ = "0.1.0"

__all__ = ["MODELS", "Estimate", "InputError", "Network", "Plan", "certify", "estimate", "frontier",
           "optimize", "read_network", "simulate", "write_estimate", "write_plan"]
