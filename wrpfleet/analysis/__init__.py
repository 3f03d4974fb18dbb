"""Analysis: summaries, statistics and figures of workloads and runs."""
