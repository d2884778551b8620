"""The network's subspecialty vocabulary: the codes radiologists hold, routing rules give
studies, and second opinions and double reading ask for (admins add and retire codes)."""
