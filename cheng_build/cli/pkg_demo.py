"""``cheng-pkg demo``: chunk and hash a file (or a generated sample) and print chunks and digests.

The main job of a fresh install until the closed loop lands: it exercises the native core end to
end (FastCDC or fixed-size chunking, SHA-256/BLAKE3, threads) and, on the generated sample, shows
why content-defined chunking matters: after inserting one byte at the front, almost every chunk is
still the same.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.core.errors import InputError, UsageError

SAMPLE_SIZE = 8 << 20
SAMPLE_SEED = 2026


def register(name: str, parser: Parser) -> None:
    parser.add_argument("file", nargs="?", help="file to chunk (default: a generated 8 MiB sample)")
    parser.add_argument(
        "--chunker",
        default="fastcdc",
        help="fastcdc (defaults 64K/256K/1M, n2), a spec like fastcdc-v1-65536-262144-1048576-n2, "
        "or size-<bytes> for fixed-size chunks (default: fastcdc)",
    )
    parser.add_argument("--algo", choices=["sha256", "blake3"], default="sha256", help="chunk digest")
    parser.add_argument("--threads", type=int, default=1, help="threads for cutting and hashing (default 1)")
    add_format_flag(parser)


def _parse_chunker(text: str) -> tuple[object | None, int | None, str]:
    """``(params, fixed_size, label)`` for a --chunker value."""
    from cheng_build._native import ChunkerParams

    try:
        if text == "fastcdc":
            params = ChunkerParams()
            return params, None, params.spec
        if text.startswith("fastcdc-"):
            params = ChunkerParams.from_spec(text)
            return params, None, params.spec
        if text.startswith("size-") and text[5:].isdigit() and int(text[5:]) > 0:
            return None, int(text[5:]), text
    except ValueError as exc:
        raise UsageError(f"bad --chunker value '{text}'", why=str(exc),
                         how="use fastcdc, fastcdc-v1-<min>-<avg>-<max>-n<0..3> or size-<bytes>") from exc
    raise UsageError(f"bad --chunker value '{text}'",
                     how="use fastcdc, fastcdc-v1-<min>-<avg>-<max>-n<0..3> or size-<bytes>")


def run(name: str, args: argparse.Namespace) -> int:
    from cheng_build._native import backends, chunk_and_hash

    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1 (got {args.threads})")
    params, fixed, label = _parse_chunker(args.chunker)
    sample: bytes | None = None
    if args.file is None:
        sample = random.Random(SAMPLE_SEED).randbytes(SAMPLE_SIZE)
        source: object = sample
        what = f"generated sample ({SAMPLE_SIZE} pseudo-random bytes, seed {SAMPLE_SEED})"
        size = SAMPLE_SIZE
    else:
        path = Path(args.file)
        if not path.is_file():
            raise InputError(f"no such file: {path}" if not path.exists() else f"not a regular file: {path}",
                             how="give the path of a file to chunk, or no path for a generated sample")
        source, what, size = path, str(path), path.stat().st_size

    started = time.perf_counter()
    chunks = chunk_and_hash(source, params, fixed_size=fixed, algo=args.algo, threads=args.threads)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    backend = backends()[args.algo]

    unchanged = None
    if sample is not None and fixed is None:
        # The point of CDC: one byte inserted at the front shifts the data, not the cut points.
        again = chunk_and_hash(b"\x00" + sample, params, algo=args.algo, threads=args.threads)  # type: ignore[arg-type]
        before = {digest for _, _, digest in chunks}
        unchanged = sum(1 for _, _, digest in again if digest in before)

    if args.format == "json":
        print(json.dumps({
            "input": what, "bytes": size, "chunker": label, "algo": args.algo, "backend": backend,
            "threads": args.threads, "seconds": round(elapsed, 6),
            "chunks": [{"offset": o, "length": n, "digest": d.hex()} for o, n, d in chunks],
            **({"unchanged_after_insert": unchanged} if unchanged is not None else {}),
        }))
        return 0
    print(f"# {what}")
    print(f"{'offset':>12} {'length':>10}  {args.algo}")
    for offset, length, digest in chunks:
        print(f"{offset:>12} {length:>10}  {digest.hex()}")
    rate = size / elapsed / 1e6 if elapsed > 0 else float("inf")
    print(f"{len(chunks)} chunks, {size} bytes, {label}, {args.algo} ({backend}), "
          f"{args.threads} thread(s), {elapsed:.3f} s ({rate:.0f} MB/s)")
    if unchanged is not None:
        print(f"after inserting 1 byte at the front: {unchanged} of {len(chunks)} chunks unchanged")
    return 0
