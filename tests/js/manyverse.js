#!/usr/bin/env node
// A peer on Manyverse's stack: secret-stack@8.1.0 with ssb-db2@8.1.0 (and its EBT adapter),
// ssb-ebt@9.1.2 (classic plus the bendy-butt format, so it also calls ebt.replicateFormat)
// and ssb-blobs@2.0.1.
//
// Usage: node manyverse.js --dir D --connect net:HOST:PORT~shs:KEY [--blob ID]
//
// Connects to the peer; ssb-ebt then calls ebt.replicate and ebt.replicateFormat on it. Each
// --blob is fetched with blobs.want. Prints {"connected": "@…"} and then {"blob": ID, "has":
// bool} per blob, then {"ready": true}, and runs until stdin closes (then closes and exits 0).
// Everything the stack logs (console.*) goes to stderr, where the test looks for exceptions.
'use strict'

const fs = require('fs')
const path = require('path')

console.log = console.info = console.warn = console.error =
  (...args) => process.stderr.write(args.map(String).join(' ') + '\n')
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const args = process.argv.slice(2)
const opts = { blobs: [] }
for (let i = 0; i < args.length; i += 2) {
  if (args[i] === '--blob') opts.blobs.push(args[i + 1])
  else opts[args[i].replace(/^--/, '')] = args[i + 1]
}
if (!opts.dir || !opts.connect) {
  process.stderr.write('usage: node manyverse.js --dir D --connect ADDRESS [--blob ID]…\n')
  process.exit(2)
}
process.env.HOME = opts.dir

const SecretStack = require('secret-stack')
const ssbKeys = require('ssb-keys')

const dir = path.resolve(opts.dir)
fs.mkdirSync(dir, { recursive: true })
const keys = ssbKeys.loadOrCreateSync(path.join(dir, 'secret'))
const caps = { shs: '1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=' }
const config = {
  path: dir,
  keys,
  caps,
  global: {
    path: dir,
    keys,
    caps,
    connections: { incoming: {}, outgoing: { net: [{ transform: 'shs' }] } }
  }
}

// secret-stack 8 hands each plugin only its own config section and `global`; ssb-db2 8,
// ssb-ebt 9 and ssb-blobs 2 read `path` and `keys` at the top level, as on secret-stack 6
// (Manyverse's). Give them the whole config.
function whole (plugin) {
  if (Array.isArray(plugin)) return plugin.map(whole)
  if (typeof plugin === 'function') return Object.assign((api) => plugin(api, config), plugin)
  return Object.assign({}, plugin, { init: (api) => plugin.init(api, config) })
}

const sbot = SecretStack({ caps })
  .use(whole(require('ssb-db2')))
  .use(whole(require('ssb-db2/compat/ebt')))
  .use(whole(require('ssb-ebt')))
  .use(whole(require('ssb-blobs')))(config)
sbot.ebt.registerFormat(require('ssb-ebt/formats/bendy-butt'))

sbot.connect(opts.connect, (err, rpc) => {
  if (err) {
    out({ fatal: 'connect: ' + err.message })
    process.exit(1)
  }
  out({ connected: rpc.id })
  const blobs = opts.blobs.slice()
  const next = () => {
    const id = blobs.shift()
    if (!id) return out({ ready: true })
    sbot.blobs.want(id, (err, has) => {
      if (err) out({ blob: id, error: err.message })
      else out({ blob: id, has })
      next()
    })
  }
  next()
})

process.stdin.resume()
process.stdin.on('end', () => sbot.close(true, () => process.exit(0)))
