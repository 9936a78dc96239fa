"""The RWAD bridge: settlement batches out (export), RWAD's results back (apply), the contract.

cheng-build produces auditable batches; the RWAD chain does the accounting (seed 000 §D-§E).
Formats: :mod:`.schemas`; ``export``: :mod:`.export`; ``apply``: :mod:`.apply`; the contract
check: :mod:`.contract`; a stand-in for the private RWAD tool: :mod:`.standin`.
"""
