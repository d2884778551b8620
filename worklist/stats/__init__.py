"""The network's figures (``/api/v1/stats/...``): turnaround, backlog, demand, flows, alerts
and workload (docs/stats.md)."""
