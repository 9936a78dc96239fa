"""How a task process is started and isolated (bubblewrap, rlimits, cleared env), the probes that
prove it, and how tasks run our own programs (``python -m cheng_build.cli.<tool>``)."""
