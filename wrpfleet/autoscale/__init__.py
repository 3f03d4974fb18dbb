"""Autoscaling policies: pure objects, pool view and metrics in, a replica target out.

The simulator calls ``decide`` every ``interval_s`` simulated seconds; live, Ray
Serve's custom autoscaling-policy hook calls the same object. Nothing here imports
simpy, ray or vllm.
"""

from wrpfleet.autoscale import model, ongoing
from wrpfleet.autoscale.base import AUTOSCALERS, Autoscaler, build_autoscaler, clamp
from wrpfleet.autoscale.ongoing import KPA, TargetOngoing

__all__ = [
    "AUTOSCALERS",
    "KPA",
    "Autoscaler",
    "TargetOngoing",
    "build_autoscaler",
    "clamp",
    "model",
    "ongoing",
]
