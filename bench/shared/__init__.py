"""What the benchmarks share: processes and CPU accounting, figures, services, DICOM pushes,
the worklist API under load, prerequisites. No benchmark imports another benchmark."""
