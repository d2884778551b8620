"""DICOMweb (QIDO-RS, WADO-RS) under ``/dicomweb`` with the worklist's tokens and visibility."""
