"""Named DIMSE status values the gateway answers with."""

from __future__ import annotations

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
MISSING_UID = 0xC001
INVALID_UID = 0xC002
SOP_INSTANCE_MISMATCH = 0xC003
STUDY_OF_ANOTHER_SITE = 0xC004

# A-ASSOCIATE-RJ (result, source, reason)
REJECTED_PERMANENT = 0x01
SOURCE_SERVICE_USER = 0x01
REASON_CALLING_AE_NOT_RECOGNISED = 0x03
REASON_CALLED_AE_NOT_RECOGNISED = 0x07
REJECTED_TRANSIENT = 0x02
SOURCE_SERVICE_PROVIDER_PRESENTATION = 0x03
REASON_TEMPORARY_CONGESTION = 0x01

# Query/Retrieve (Part 4 C.4): pending answers, cancel, and the failures we send.
PENDING = 0xFF00
CANCEL = 0xFE00
OUT_OF_RESOURCES_MATCHES = 0xA701  # "unable to calculate number of matches"
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # identifier does not match SOP class
# Q/R's "unable to process" range starts where storage's "cannot understand" does.
UNABLE_TO_PROCESS = 0xC000
MOVE_DESTINATION_UNKNOWN = 0xA801
SUBOPERATIONS_FAILED = 0xA702  # every C-STORE sub-operation failed
SUBOPERATIONS_WARNING = 0xB000  # some sub-operations failed or warned
# pynetdicom's answer when a C-MOVE handler cannot plan the move (database down, bad
# identifier): the first thing a move handler yields must be the destination.
MOVE_UNABLE_TO_PROCESS = 0xC514
# C-STORE responses that still count as delivered (coercion, element discarded, ...).
STORE_WARNINGS = frozenset({0xB000, 0xB006, 0xB007})
