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
                        f"ipfs-unixfs-importer@{IMPORTER_VERSION}"],
                       cwd=root, check=True, capture_output=True, timeout=300)
        (root / "oracle.mjs").write_text(SCRIPT)
        return cls(root)

    def roots(self, cases: list[dict[str, object]]) -> list[str]:
        """Root CIDs of ``cases``: ``{"kind": "file"|"dir", "path": str, "chunk": int}``."""
        res = subprocess.run(["node", "oracle.mjs"], cwd=self.root, input=json.dumps(cases),
                             capture_output=True, text=True, timeout=300, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"node oracle failed: {res.stderr[-2000:]}")
        return list(json.loads(res.stdout))


def tools_missing() -> str | None:
    """Why the oracle cannot run here, or ``None``."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None
