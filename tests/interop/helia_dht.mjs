// A Helia node with @libp2p/kad-dht for the DHT interop test, on 127.0.0.1 only, bounded lifetime.
//
//   node helia_dht.mjs provide <bootstrap maddr> <file>
//       add <file> in a directory (UnixFS, CIDv1, raw leaves) as data.bin, join the DHT through
//       <bootstrap>, announce the directory's CID (ADD_PROVIDER), print
//       {"cid": ..., "peer": ..., "addrs": [...]}, serve until stdin closes
//   node helia_dht.mjs find <bootstrap maddr> <cid> <out>
//       join the DHT through <bootstrap> only, ask it for the providers of <cid>, print each
//       provider found, then fetch <cid> over bitswap from them (Helia dials what the DHT said)
//       and export it to <out>; print {"providers": [...], "bytes": n}
//
// The DHT is configured for a private loopback network (see ../shared/reference/network-notes.md
// A4): the protocol py-libp2p speaks ('/ipfs/kad/1.0.0'), server mode (a client registers no
// handler, so py could not send it ADD_PROVIDER), and passthroughMapper (the default mapper
// drops 127.0.0.1 addresses, so py peers would never enter its routing table). kad-dht needs
// the ping and identify services. No bootstrap list, mDNS, delegated routers or gateways.
import { boundLifetime, exportTo, serveUntilStdinCloses, startHelia } from './helia_setup.mjs'

const { identifyPush } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { multiaddr } = await import('@multiformats/multiaddr')
const { CID } = await import('multiformats/cid')
const fs = await import('node:fs')

const [mode, bootstrap, ...args] = process.argv.slice(2)
boundLifetime('helia_dht')
const signal = () => AbortSignal.timeout(30000)

const { helia, ufs } = await startHelia({
  listen: ['/ip4/127.0.0.1/tcp/0'],
  services: {
    identifyPush: identifyPush(),
    ping: ping(),
    dht: kadDHT({ protocol: '/ipfs/kad/1.0.0', clientMode: false, peerInfoMapper: passthroughMapper })
  }
})
const dht = helia.libp2p.services.dht

async function join () {
  await helia.libp2p.dial(multiaddr(bootstrap), { signal: signal() })
  const t0 = Date.now()
  while (dht.routingTable.size === 0) {
    if (Date.now() - t0 > 20000) throw new Error('the bootstrap peer never entered the routing table')
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

if (mode === 'provide') {
  const data = fs.readFileSync(args[0])
  const file = await ufs.addBytes(data, { cidVersion: 1, rawLeaves: true })
  const dir = await ufs.cp(file, await ufs.addDirectory(), 'data.bin')
  await join()
  await helia.routing.provide(dir, { signal: signal() })
  serveUntilStdinCloses(helia, { cid: dir.toString(), peer: helia.libp2p.peerId.toString(),
    addrs: helia.libp2p.getMultiaddrs().map(String) })
} else if (mode === 'find') {
  const [cidText, out] = args
  const cid = CID.parse(cidText)
  await join()
  const providers = []
  for await (const p of helia.routing.findProviders(cid, { signal: signal() })) {
    providers.push(p.id.toString())
    break
  }
  if (providers.length === 0) throw new Error('no provider found')
  const n = await exportTo(ufs, cid, out, signal)
  console.log(JSON.stringify({ providers, bytes: n }))
  await helia.stop()
  process.exit(0)
} else {
  console.error('usage: helia_dht.mjs provide <bootstrap> <file> | find <bootstrap> <cid> <out>')
  process.exit(2)
}
