// A Helia node for the interop test, on 127.0.0.1 only, with bounded lifetime.
//
//   node helia_node.mjs serve <file>          add <file> (UnixFS, CIDv1, raw leaves; chunk size
//                                             HELIA_CHUNK_SIZE if set), print
//                                             {"cid": ..., "addrs": [...]}, serve until stdin closes
//   node helia_node.mjs fetch <maddr> <cid> <out>   dial <maddr>, export <cid> (a file or a
//                                             directory tree) to <out>, print
//                                             {"cid": ..., "bytes": n, "seconds": s}, exit
//
// Only TCP + noise + yamux + identify and bitswap (helia_setup.mjs): no DHT, no delegated
// routing, no public gateways, so nothing leaves the machine.
import { boundLifetime, exportTo, serveUntilStdinCloses, startHelia } from './helia_setup.mjs'

const { multiaddr } = await import('@multiformats/multiaddr')
const { CID } = await import('multiformats/cid')
const fs = await import('node:fs')

const [mode, ...args] = process.argv.slice(2)
const lifetimeMs = boundLifetime('helia_node')

const { helia, ufs } = await startHelia({ listen: mode === 'serve' ? ['/ip4/127.0.0.1/tcp/0'] : [] })

if (mode === 'serve') {
  const data = fs.readFileSync(args[0])
  const options = { cidVersion: 1, rawLeaves: true }
  if (process.env.HELIA_CHUNK_SIZE) {
    // The same fixed-size chunks as ours, so a benchmark compares like with like.
    const { fixedSize } = await import('ipfs-unixfs-importer/chunker')
    options.chunker = fixedSize({ chunkSize: Number(process.env.HELIA_CHUNK_SIZE) })
  }
  const cid = await ufs.addBytes(data, options)
  serveUntilStdinCloses(helia, { cid: cid.toString(), addrs: helia.libp2p.getMultiaddrs().map(String) })
} else if (mode === 'fetch') {
  const [addr, cidText, out] = args
  await helia.libp2p.dial(multiaddr(addr))
  const cid = CID.parse(cidText)
  const t0 = performance.now()
  const signal = AbortSignal.timeout(lifetimeMs)
  const n = await exportTo(ufs, cid, out, () => signal)
  const seconds = (performance.now() - t0) / 1000
  console.log(JSON.stringify({ cid: cid.toString(), bytes: n, seconds }))
  await helia.stop()
  process.exit(0)
} else {
  console.error('usage: helia_node.mjs serve <file> | fetch <maddr> <cid> <out>')
  process.exit(2)
}
