"""gcsim: a discrete-event simulator of stragglers and gradient coding in distributed learning.

from simulator import load_config, run
result = run(load_config("configs/quickstart.yaml"))
result.summary        # one row per (scheme, trial)
result.table()        # per-scheme statistics
"""

__version__ = "0.1.0"

from .config import ConfigError, load_config  # noqa: E402
from .runner import RunResult, run  # noqa: E402

__all__ = ["ConfigError", "RunResult", "load_config", "run", "__version__"]
