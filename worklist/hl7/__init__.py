"""Orders in over HL7 v2 (MLLP): the parser of ORM^O01/OMI^O23 (``parse``), the
acknowledgements (``ack``), one message's handling (``service``) and the listener
(``server``, run by ``worklist hl7``)."""
