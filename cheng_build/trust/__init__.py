"""Keys, signatures, the registry log, checkpoints and security levels."""
