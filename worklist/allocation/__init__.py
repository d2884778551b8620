"""Allocation: each site's settings for who ``worklist/next`` hands its studies to."""
