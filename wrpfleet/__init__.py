"""wrpfleet: Workload-Router-Pool planning and serving of LLM inference fleets."""

from wrpfleet.errors import InputError
from wrpfleet.types import Request

__all__ = ["InputError", "Request"]
__version__ = "0.1.0"
