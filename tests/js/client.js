#!/usr/bin/env node
// ssb-client@4.9.0 (what Patchwork-era apps and scripts use) against a remote peer.
//
// Usage: node client.js --remote net:HOST:PORT~shs:KEY [--blob ID]…
//
// Connects twice with a fresh identity and the default network key:
// 1. without a manifest, so ssb-client asks the peer for its `manifest` and builds its API
//    from it; calls `whoami` and `blobs.has(ID)` for each --blob;
// 2. with a manifest naming methods the peer does not offer (`ebt.clock`,
//    `ebt.replicateFormat`, `ebt.nope`, `nope`), and calls each to see the error it answers.
// Prints one JSON line: {manifest, whoami, has: {ID: bool}, errors: {METHOD: {name, message,
// isError}}}, or {fatal: "…"} with exit code 1.
'use strict'

const ssbClient = require('ssb-client')
const ssbKeys = require('ssb-keys')
const pull = require('pull-stream')

const args = process.argv.slice(2)
let remote = null
const blobs = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--remote') remote = args[++i]
  else if (args[i] === '--blob') blobs.push(args[++i])
  else { process.stderr.write('client.js: unknown argument ' + args[i] + '\n'); process.exit(2) }
}
if (!remote) { process.stderr.write('client.js: --remote is required\n'); process.exit(2) }

const caps = { shs: '1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=' }
const config = { caps, timers: { handshake: 10000 } }
const keys = ssbKeys.generate()

function fatal (what, err) {
  console.log(JSON.stringify({ fatal: what + ': ' + (err && err.message ? err.message : String(err)) }))
  process.exit(1)
}

function shape (err) {
  if (!err) return null
  return { name: err.name, message: err.message, isError: err instanceof Error }
}

const out = { manifest: null, whoami: null, has: {}, errors: {} }

ssbClient(keys, { remote, config, caps }, (err, sbot) => {
  if (err) return fatal('connect', err)
  sbot.manifest((err, manifest) => {
    if (err) return fatal('manifest', err)
    out.manifest = manifest
    sbot.whoami((err, who) => {
      if (err) return fatal('whoami', err)
      out.whoami = who.id
      let left = blobs.length
      const next = () => { if (left === 0) sbot.close(probes) }
      next()
      for (const id of blobs) {
        if (!sbot.blobs || typeof sbot.blobs.has !== 'function') return fatal('blobs.has', 'sbot.blobs.has is not a function')
        sbot.blobs.has(id, (err, has) => {
          if (err) return fatal('blobs.has ' + id, err)
          out.has[id] = has
          left--
          next()
        })
      }
    })
  })
})

function probes () {
  const manifest = {
    ebt: { clock: 'async', replicateFormat: 'duplex', nope: 'async' },
    nope: 'async'
  }
  ssbClient(keys, { remote, config, caps, manifest }, (err, sbot) => {
    if (err) return fatal('connect with a manifest', err)
    sbot.ebt.clock({ format: 'classic' }, (err) => {
      out.errors['ebt.clock'] = shape(err)
      sbot.ebt.nope((err) => {
        out.errors['ebt.nope'] = shape(err)
        sbot.nope((err) => {
          out.errors.nope = shape(err)
          // As ssb-ebt 9 calls it: a callback for the call's error, and our side's
          // source open until the peer ends the call.
          const duplex = sbot.ebt.replicateFormat({ version: 3, format: 'indexed' }, (err) => {
            out.errors['ebt.replicateFormat'] = shape(err)
            console.log(JSON.stringify(out))
            process.exit(0)
          })
          const open = (abort, cb) => { if (abort) cb(abort) }
          pull(open, duplex, pull.drain(null, () => {}))
        })
      })
    })
  })
}
