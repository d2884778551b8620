"""DICOM gateway: receives studies from member sites, stores them durably and indexes them."""
