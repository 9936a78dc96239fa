"""The JS oracle: ``ipfs-unixfs-importer`` installed by npm into a temp folder, run by node.

One node process imports a whole batch of cases (files and directory trees) and prints their root
CIDs as JSON, so the differential test pays node's start-up and the npm install once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

IMPORTER_VERSION = "17"  # major pinned: options below are this API
CAR_VERSION = "5"

CAR_SCRIPT = r"""
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CarWriter } from '@ipld/car/writer'
import { CarReader } from '@ipld/car/reader'
import { readFileSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'

const ops = JSON.parse(readFileSync(0, 'utf8'))
const out = []
for (const op of ops) {
  if (op.op === 'export') {
    const blocks = new Map()
    const store = {
      put: async (cid, bytes) => { blocks.set(cid.toString(), { cid, bytes }); return cid },
      get: async (cid) => blocks.get(cid.toString()).bytes,
      has: async (cid) => blocks.has(cid.toString())
    }
    const options = { cidVersion: 1, rawLeaves: true, wrapWithDirectory: false,
      chunker: fixedSize({ chunkSize: op.chunk }), layout: balanced({ maxChildrenPerNode: 174 }) }
    let root
    for await (const e of importer([{ content: readFileSync(op.path) }], store, options)) root = e.cid
    const { writer, out: stream } = CarWriter.create([root])
    const parts = []
    const drain = (async () => { for await (const c of stream) parts.push(c) })()
    for (const b of blocks.values()) await writer.put(b)
    await writer.close()
    await drain
    writeFileSync(op.out, Buffer.concat(parts))
    out.push({ root: root.toString(), blocks: blocks.size })
  } else {
    const reader = await CarReader.fromBytes(readFileSync(op.car))
    const roots = (await reader.getRoots()).map((c) => c.toString())
    let count = 0
    let verified = 0
    for await (const { cid, bytes } of reader.blocks()) {
      count++
      const digest = createHash('sha256').update(bytes).digest()
      const want = Buffer.from(cid.multihash.digest)
      if (cid.multihash.code === 0x12 && Buffer.compare(digest, want) === 0) verified++
    }
    out.push({ roots, blocks: count, verified })
  }
}
process.stdout.write(JSON.stringify(out))
"""

SCRIPT = r"""
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { readFileSync, readdirSync, lstatSync } from 'node:fs'
import { join, basename } from 'node:path'

// Blocks are not kept: we only need the root CIDs (the same store-nothing mode as --only-hash).
const blockstore = {
  put: async (cid) => cid,
  get: async () => { throw new Error('no get') },
  has: async () => false
}

function * walk (dir, prefix) {
  yield { path: prefix }
  for (const name of readdirSync(dir)) {
    const full = join(dir, name)
    const st = lstatSync(full)
    if (st.isDirectory()) yield * walk(full, prefix + '/' + name)
    else yield { path: prefix + '/' + name, content: readFileSync(full) }
  }
}

const cases = JSON.parse(readFileSync(0, 'utf8'))
const out = []
for (const c of cases) {
  const options = {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: false,
    chunker: fixedSize({ chunkSize: c.chunk }),
    layout: balanced({ maxChildrenPerNode: 174 })
  }
  let source
  if (c.kind === 'file') source = [{ content: readFileSync(c.path) }]
  else source = [...walk(c.path, basename(c.path))]
  let last
  for await (const entry of importer(source, blockstore, options)) last = entry
  out.push(last.cid.toString())
}
process.stdout.write(JSON.stringify(out))
"""


class JsImporter:
    """A node + npm ``ipfs-unixfs-importer`` installation in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def install(cls, root: Path) -> JsImporter:
        """npm install the importer into ``root`` (raises CalledProcessError on failure)."""
        root.mkdir(parents=True, exist_ok=True)
        (root / "package.json").write_text('{"name": "oracle", "private": true, "type": "module"}')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                        f"ipfs-unixfs-importer@{IMPORTER_VERSION}", f"@ipld/car@{CAR_VERSION}"],
                       cwd=root, check=True, capture_output=True, timeout=300)
        (root / "oracle.mjs").write_text(SCRIPT)
        (root / "car.mjs").write_text(CAR_SCRIPT)
        return cls(root)

    def _node(self, script: str, payload: object) -> list[object]:
        res = subprocess.run(["node", script], cwd=self.root, input=json.dumps(payload),
                             capture_output=True, text=True, timeout=300, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"node {script} failed: {res.stderr[-2000:]}")
        return list(json.loads(res.stdout))

    def roots(self, cases: list[dict[str, object]]) -> list[str]:
        """Root CIDs of ``cases``: ``{"kind": "file"|"dir", "path": str, "chunk": int}``."""
        return [str(x) for x in self._node("oracle.mjs", cases)]

    def car_ops(self, ops: list[dict[str, object]]) -> list[dict[str, object]]:
        """``{"op": "export", "path", "chunk", "out"}`` writes a CAR with @ipld/car;
        ``{"op": "read", "car"}`` reads one and re-hashes its blocks."""
        return [dict(x) for x in self._node("car.mjs", ops)]  # type: ignore[call-overload]


def tools_missing() -> str | None:
    """Why the oracle cannot run here, or ``None``."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None
