"""meio: multi-echelon inventory optimization for whole catalogs.

``read_network`` validates a catalog, ``optimize`` places safety stock with a model
(``single``, ``gsm``, ...), returning Polars frames.
"""

from meio.api import MODELS, Network, Plan, optimize, read_network, write_plan
from meio.io.errors import InputError

__version__ = "0.1.0"

__all__ = ["MODELS", "InputError", "Network", "Plan", "optimize", "read_network", "write_plan"]
