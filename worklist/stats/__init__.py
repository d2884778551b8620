"""Network performance figures (``/api/v1/stats/...``): turnaround, backlog, demand, flows,
alerts, workload, and the monthly per-examination extract."""
