// What helia_node.mjs and helia_dht.mjs share: a Helia node on 127.0.0.1 only (TCP + noise +
// yamux + identify and bitswap; callers add services such as the DHT), a bounded lifetime, and the
// export of a UnixFS file or directory tree to disk. Nothing here reaches past loopback.
if (typeof Promise.withResolvers !== 'function') {
  // node 20 lacks it; libp2p 3 uses it. Set before any libp2p module loads (they are imported
  // dynamically below and by the callers for this reason).
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const fs = await import('node:fs')

// Exit 3 after HELIA_LIFETIME_MS (default 120 s) whatever happens; returns that lifetime.
export function boundLifetime (name) {
  const lifetimeMs = Number(process.env.HELIA_LIFETIME_MS ?? 120000)
  setTimeout(() => { console.error(`${name}: lifetime exceeded`); process.exit(3) }, lifetimeMs).unref()
  return lifetimeMs
}

// A started Helia node listening on `listen` (a list of multiaddrs; empty: dial only) with
// identify plus `services`; returns { helia, ufs }.
export async function startHelia ({ listen, services = {} }) {
  const { createHeliaLight } = await import('helia')
  const { withLibp2pLight } = await import('@helia/libp2p')
  const { withBitswap } = await import('@helia/bitswap')
  const { unixfs } = await import('@helia/unixfs')
  const { tcp } = await import('@libp2p/tcp')
  const { noise } = await import('@chainsafe/libp2p-noise')
  const { yamux } = await import('@chainsafe/libp2p-yamux')
  const { identify } = await import('@libp2p/identify')
  const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ...services }
  }))
  await helia.start()
  return { helia, ufs: unixfs(helia) }
}

// Export `cid` (a file, or a directory tree) to `path`; returns the bytes written. `signal()`
// gives the abort signal for each call.
export async function exportTo (ufs, cid, path, signal) {
  const st = await ufs.stat(cid, { signal: signal() })
  if (st.type === 'directory') {
    fs.mkdirSync(path, { recursive: true })
    let n = 0
    for await (const entry of ufs.ls(cid, { signal: signal() })) {
      n += await exportTo(ufs, entry.cid, `${path}/${entry.name}`, signal)
    }
    return n
  }
  let n = 0
  const fd = fs.openSync(path, 'w')
  for await (const chunk of ufs.cat(cid, { signal: signal() })) {
    fs.writeSync(fd, chunk)
    n += chunk.length
  }
  fs.closeSync(fd)
  return n
}

// Print `info` as one JSON line, then serve until stdin closes (the parent's way to stop us).
export function serveUntilStdinCloses (helia, info) {
  console.log(JSON.stringify(info))
  process.stdin.resume()
  process.stdin.on('end', async () => { await helia.stop(); process.exit(0) })
}
