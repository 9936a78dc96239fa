#!/bin/sh
# A stand-in for RWAD-blockchain's tools/rwad_cheng_points_settle.sh (the real tool is private),
# laid out like an RWAD checkout so `cheng-rwad-bridge verify-contract --rwad-root:examples/rwad-standin`
# runs the contract check. PYTHON names the interpreter that has cheng-build installed.
exec "${PYTHON:-python3}" -m cheng_build.settle.rwad.standin "$@"
