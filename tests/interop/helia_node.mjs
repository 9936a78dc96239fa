// A Helia node for the interop test, on 127.0.0.1 only, with bounded lifetime.
//
//   node helia_node.mjs serve <file>          add <file> (UnixFS, CIDv1, raw leaves; chunk size
//                                             HELIA_CHUNK_SIZE if set), print
//                                             {"cid": ..., "addrs": [...]}, serve until stdin closes
//   node helia_node.mjs fetch <maddr> <cid> <out>   dial <maddr>, export <cid> (a file or a
//                                             directory tree) to <out>, print
//                                             {"cid": ..., "bytes": n, "seconds": s}, exit
//
// Only TCP + noise + yamux + identify and bitswap: no DHT, no delegated routing, no public
// gateways, so nothing leaves the machine.
if (typeof Promise.withResolvers !== 'function') {
  // node 20 lacks it; libp2p 3 uses it.
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createHeliaLight } = await import('helia')
const { withLibp2pLight } = await import('@helia/libp2p')
const { withBitswap } = await import('@helia/bitswap')
const { unixfs } = await import('@helia/unixfs')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { multiaddr } = await import('@multiformats/multiaddr')
const { CID } = await import('multiformats/cid')
const fs = await import('node:fs')

const [mode, ...args] = process.argv.slice(2)
const lifetimeMs = Number(process.env.HELIA_LIFETIME_MS ?? 120000)
setTimeout(() => { console.error('helia_node: lifetime exceeded'); process.exit(3) }, lifetimeMs).unref()

const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
  addresses: { listen: mode === 'serve' ? ['/ip4/127.0.0.1/tcp/0'] : [] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
}))
await helia.start()
const ufs = unixfs(helia)

if (mode === 'serve') {
  const data = fs.readFileSync(args[0])
  const options = { cidVersion: 1, rawLeaves: true }
  if (process.env.HELIA_CHUNK_SIZE) {
    // The same fixed-size chunks as ours, so a benchmark compares like with like.
    const { fixedSize } = await import('ipfs-unixfs-importer/chunker')
    options.chunker = fixedSize({ chunkSize: Number(process.env.HELIA_CHUNK_SIZE) })
  }
  const cid = await ufs.addBytes(data, options)
  console.log(JSON.stringify({ cid: cid.toString(), addrs: helia.libp2p.getMultiaddrs().map(String) }))
  process.stdin.resume()
  process.stdin.on('end', async () => { await helia.stop(); process.exit(0) })
} else if (mode === 'fetch') {
  const [addr, cidText, out] = args
  await helia.libp2p.dial(multiaddr(addr))
  const cid = CID.parse(cidText)
  let n = 0
  const t0 = performance.now()
  const signal = AbortSignal.timeout(lifetimeMs)
  async function exportTo (c, path) {
    const st = await ufs.stat(c, { signal })
    if (st.type === 'directory') {
      fs.mkdirSync(path, { recursive: true })
      for await (const entry of ufs.ls(c, { signal })) {
        await exportTo(entry.cid, `${path}/${entry.name}`)
      }
      return
    }
    const fd = fs.openSync(path, 'w')
    for await (const chunk of ufs.cat(c, { signal })) {
      fs.writeSync(fd, chunk)
      n += chunk.length
    }
    fs.closeSync(fd)
  }
  await exportTo(cid, out)
  const seconds = (performance.now() - t0) / 1000
  console.log(JSON.stringify({ cid: cid.toString(), bytes: n, seconds }))
  await helia.stop()
  process.exit(0)
} else {
  console.error('usage: helia_node.mjs serve <file> | fetch <maddr> <cid> <out>')
  process.exit(2)
}
