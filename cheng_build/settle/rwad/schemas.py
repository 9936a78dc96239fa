"""Schema names and fixed texts of the bridge (reference §1.10)."""

from __future__ import annotations

BATCH_V1 = "cheng-rwad-settlement/v1"
BATCH_V2 = "cheng-rwad-settlement/v2"
BATCH_SCHEMAS = (BATCH_V1, BATCH_V2)
RESULT_V1 = "rwad-cheng-settlement-result/v1"
ACK_V1 = "cheng-rwad-ack/v1"

# v1 is the original envelope byte for byte, including the original script's name as source.
SOURCE_V1 = "cheng-lang/cheng_rwad_bridge.sh"
SOURCE_V2 = "cheng-build/cheng-rwad-bridge"

# Domain separation: a v2 signature can never be replayed as a registry or lease signature.
SIGN_DOMAIN_V2 = b"cheng-rwad-settlement/v2\n"

# The one status every cheng script requires; others (pending, rejected, ...) are RWAD's.
FINALIZED = "finalized"

# The RWAD tool's place in an RWAD checkout, and its flags (the original contract script).
RWAD_TOOL_REL = "tools/rwad_cheng_points_settle.sh"

__all__ = ["ACK_V1", "BATCH_SCHEMAS", "BATCH_V1", "BATCH_V2", "FINALIZED", "RESULT_V1",
           "RWAD_TOOL_REL", "SIGN_DOMAIN_V2", "SOURCE_V1", "SOURCE_V2"]
