"""Orders from the trusts' RIS: what an order says (``content``), whatever carried it
(HL7 v2 over MLLP, FHIR ServiceRequest), and the one place that applies it to the
order table and its study (``service``)."""
