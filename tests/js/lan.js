#!/usr/bin/env node
// Manyverse's LAN discovery, ssb-lan@1.2.3, run with ssb-lan's own API (no secret-stack):
// the plugin gets a small stand-in for the node with its id, keys and address.
//
// Usage:
//   node lan.js packet --seed HEX32 --address net:IP:PORT~shs:KEY [--caps B64]
//     prints {"legacy": "…", "encrypted": "HEX"}: the two datagrams ssb-lan sends for that
//     address (made by ssb-lan's writeLegacy / writeNormal, caught before the socket).
//   node lan.js run --seed HEX32 --host IP --port P [--caps B64] [--legacy false]
//     starts ssb-lan announcing net:IP:P~shs:KEY on UDP 26830 and 8008 (not 8008 with
//     --legacy false; to the broadcast address of its first private interface) and prints
//     one JSON line per peer it discovers, {"address": "…", "verified": bool}, until
//     stdin closes. `verified` is true for the encrypted form (signature checked).
// --caps defaults to the main network's key.
'use strict'

const ssbKeys = require('ssb-keys')
const pull = require('pull-stream')
const LAN = require('ssb-lan')

const DEFAULT_CAPS = '1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s='

const [mode, ...rest] = process.argv.slice(2)
const opts = { caps: DEFAULT_CAPS }
for (let i = 0; i < rest.length; i += 2) opts[rest[i].replace(/^--/, '')] = rest[i + 1]
if (!opts.seed) { process.stderr.write('lan.js: --seed is required\n'); process.exit(2) }
const keys = ssbKeys.generate('ed25519', Buffer.from(opts.seed, 'hex'))
const key = keys.public.replace(/\.ed25519$/, '')

function stub (address) {
  return {
    id: keys.id,
    keys,
    getAddress: () => address,
    close: { hook: () => {} }
  }
}

if (mode === 'packet') {
  const lan = new LAN(stub(opts.address), { caps: { shs: opts.caps } })
  const out = {}
  lan.legacyBroadcast = { write: (s) => { out.legacy = String(s) } }
  lan.normalBroadcast = { write: (b) => { out.encrypted = Buffer.from(b).toString('hex') } }
  lan.writeLegacy()
  lan.writeNormal()
  console.log(JSON.stringify(out))
} else if (mode === 'run') {
  const address = `net:${opts.host}:${opts.port}~shs:${key}`
  const lan = LAN.init(stub(address), {
    caps: { shs: opts.caps },
    lan: { legacy: opts.legacy !== 'false' }
  })
  lan.start()
  const seen = new Set()
  pull(lan.discoveredPeers(), pull.drain((p) => {
    const line = JSON.stringify({ address: p.address, verified: p.verified })
    if (seen.has(line)) return
    seen.add(line)
    console.log(line)
  }))
  console.error(JSON.stringify({ announcing: address }))
  process.stdin.resume()
  process.stdin.on('end', () => { lan.stop(); process.exit(0) })
} else {
  process.stderr.write('lan.js: mode is packet or run\n')
  process.exit(2)
}
