"""Benchmarks: DICOM ingest throughput and worklist appearance latency (see README.md)."""
