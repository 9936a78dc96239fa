"""What one ``chengc`` invocation asks for and what it gets back: the request, its package
options, the result and its status, and where the artifact goes by default."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path

from cheng_build.build.imports import ImportGraph
from cheng_build.core.record import dataclass, field

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual

if TYPE_CHECKING:
    pass

ARTIFACT_DIR = "artifacts/chengc"


META_NAME = "cheng.meta.toml"


STAGED_OUT_DIR = "out"


class Emit(Enum):
    """What the build stops at."""

    COMPILE = "compile"
    CHECK = "check"  # resolution only; no compiler needed
    BUNDLE = "bundle"  # a CAR of exactly the inputs, for compiling elsewhere


class Status(Enum):
    """How a build ended."""

    HIT = "hit"
    BUILT = "built"
    CHECKED = "checked"
    BUNDLED = "bundled"


@dataclass(frozen=True, slots=True)
class PackageOptions:
    """The package flags (``--manifest --lock --registry --package --channel ...``)."""

    manifest: Path | None = None
    lock: Path | None = None
    registry: Path | None = None
    package: str | None = None
    channel: str = "stable"
    lock_format: str = "toml"
    pkg_cache: Path | None = None
    skip_pkg: bool = False
    verify: bool = False
    allow_unsigned: bool = False  # development mode, L0 only (cheng_build.pkg.unsigned)
    allow_quarantined: bool = False  # refused at L2 (cheng_build.pkg.governance)

    @property
    def active(self) -> bool:
        """True when the package flow runs (something package-related was named)."""
        return not self.skip_pkg and (self.manifest is not None or self.lock is not None
                                      or self.package is not None)


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """One ``chengc`` invocation, fully parsed; paths relative to ``cwd``."""

    source: Path
    compiler_flags: tuple[str, ...] = ()  # for the compiler, in order; no --name/--out
    name: str | None = None
    out: str | None = None
    target: str | None = None
    emit: Emit = Emit.COMPILE
    run: bool = False
    compiler: str | None = None
    reproducible_check: bool = False
    no_cache: bool = False
    env_allow: tuple[str, ...] = ()
    pkg_roots: str | None = None
    meta_out: Path | None = None
    bundle_out: Path | None = None
    packages: PackageOptions = field(default_factory=PackageOptions)
    cache_dir: Path = Path("chengcache")
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path(".")
    sign: str | None = None  # a key file or env:VAR: write a signed provenance attestation
    ledger: Path | None = None  # meter the compile and record its usage here (--ledger)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What the build did; the CLI turns it into output."""

    status: Status
    graph: ImportGraph
    input_root: str
    output: Path | None = None
    meta: Path | None = None
    key: str | None = None
    explain: tuple[str, ...] = ()
    stdout: bytes = b""
    stderr: bytes = b""
    compiled: int = 0  # how many times the compiler ran (0 on a hit, 2 with --reproducible-check)
    files_read: int = 0
    warnings: tuple[str, ...] = ()  # from verify (e.g. L0 placeholder signatures)
    package_steps: tuple[str, ...] = ()  # which package-flow steps ran (others were remembered)
    attestation: Path | None = None  # the signed provenance (--sign)
    # On a hit: every path the answer rests on and the trust's expiry, for the no-op fast path
    # (cheng_build.build.noop); empty when this hit must not be replayed without a full build.
    watch: tuple[str, ...] = ()
    valid_until: float | None = None


def output_path(source: Path, name: str | None, out: str | None, cwd: Path) -> Path:
    """Where the artifact goes (see the module docstring)."""
    if out:
        p = Path(out)
    else:
        n = name or (source.name[: -len(".cheng")] if source.name.endswith(".cheng") else source.stem)
        p = Path(n) if "/" in n else Path(ARTIFACT_DIR) / n
    return p if p.is_absolute() else cwd / p


__all__ = ["ARTIFACT_DIR", "META_NAME", "STAGED_OUT_DIR", "BuildRequest", "BuildResult", "Emit",
           "PackageOptions", "Status", "output_path"]
