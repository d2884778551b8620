"""DICOM matching shared by C-FIND (the gateway) and QIDO-RS (the API).

``values`` turns matching values (PS3.4 C.2.2.2) into one ``Matching``; ``conditions``
turns a ``Matching`` into SQL conditions on the index. Each protocol keeps only how it
reads its request and answers it.
"""
