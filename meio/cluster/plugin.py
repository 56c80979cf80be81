"""The worker plugin that warms meio's kernels (imports ``distributed``: load it where a client is).

Its own module so that commands which run in this process (a single partition, ``meio
report``, ``meio generate``) never import ``distributed``; the workers unpickle the plugin by
this module's name.
"""

from __future__ import annotations

import asyncio
from typing import Any

from distributed import WorkerPlugin

from meio.cluster.workers import warm_up


class WarmUpPlugin(WorkerPlugin):
    """Warm the kernels of one model on every worker at start (and on restarted workers)."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.model = model
        self.options = options
        self.name = f"meio-warm-up-{model}"

    async def setup(self, worker: Any) -> None:
        """Run :func:`warm_up` off the worker's event loop."""
        await asyncio.get_running_loop().run_in_executor(None, warm_up, self.model, self.options)
