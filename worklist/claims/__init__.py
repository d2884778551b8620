"""Claims: the lease a radiologist holds on a study while reporting it, and ``worklist/next``."""
