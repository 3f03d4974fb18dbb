"""Live serving: the twin engine now; the Ray Serve app, vLLM replicas, the energy
meter and the autoscaling adapter build on it (DESIGN.md, Live)."""
