"""Default locations, each overridable by a flag or an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE_DIR = "chengcache"
DEFAULT_REGISTRY = "build/cheng_registry/registry.jsonl"


def cache_dir(flag: str | None = None) -> Path:
    """The package cache: ``--pkg-cache:`` > ``PKG_CACHE`` > ``./chengcache``."""
    return Path(flag or os.environ.get("PKG_CACHE") or DEFAULT_CACHE_DIR)


def registry_path(flag: str | None = None) -> Path:
    """The registry log: ``--registry:`` > ``PKG_REGISTRY`` > ``build/cheng_registry/registry.jsonl``."""
    return Path(flag or os.environ.get("PKG_REGISTRY") or DEFAULT_REGISTRY)
