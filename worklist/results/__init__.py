"""Results to the trusts' RIS: finalised and amended reports as HL7 v2.5.1 ORU^R01 over MLLP.

Signing and amending add an ``hl7`` delivery to the result's outbox message when the
site has a RIS target (``sites.ris_host``/``ris_port``); the worker's outbox dispatcher
sends it (``channel.Hl7Channel``) with the leases, backoff and attempt records it gives
every channel. The message is rendered (``oru``) from what the outbox message carries,
so a retry or a second worker sends the same ORU.
"""
