#!/usr/bin/env node
// A real ssb-server@16.0.1 that tests drive over stdin/stdout, one JSON object per line.
//
// Usage: node server.js --dir T --port P --ws-port Q [--no-ebt] [--logging LEVEL]
//
// The server is assembled like ssb-server's own `bin.js start`: secret-stack + ssb-db (ssb-server's
// index.js) plus the same plugins in the same order, without user plugins. `--no-ebt` leaves out
// ssb-ebt; ssb-replicate then replicates with createHistoryStream only. It listens on 127.0.0.1:P
// (net) and 127.0.0.1:Q (ws), with LAN broadcast and pub/global gossip off. Its identity is T/secret
// (created if missing), its data lives in T, and HOME is set to T.
//
// Once listening it prints {"ready":true,"id":"@…","address":"net:127.0.0.1:P~shs:KEY"}. Then each
// input line is one command {"cmd":NAME,…}; each gets exactly one answer line, in order, either a
// result object or {"error":"…"}. Stdin EOF closes the server and exits 0. Server logs go to stderr.
//
// Commands (times in ms since the epoch are `…At`, durations `…Ms`):
//   whoami                          -> {id}
//   publish {content}               -> {key, seq, startedAt, at}
//   publishMany {n}                 -> {first, last, ms}   n posts {"type":"post","text":"message i"}
//   follow {id, following?}         -> {key, seq}          a contact message
//   connect {address}               -> {ms}                gossip.connect, answers once connected
//   peers                           -> {peers: [{key, state}]}  ssb-gossip's peer table
//   clock                           -> {clock}             getVectorClock
//   waitFor {id, seq, timeoutMs?}   -> {seq, elapsedMs, arrivedAt}  answers when feed id holds seq;
//                                      arrivedAt: when that message was written here (null if unknown)
//   history {id}                    -> {count, last}       from createHistoryStream
//   export {id, path}               -> {count}             writes {"key","value","timestamp"} lines
//   addFile {path}                  -> {added, ms}         sbot.add every line (bare value or {key,value})
//   blobAdd {base64 | path}         -> {id, size}
//   blobHas {id}                    -> {has}
//   blobWant {id, timeoutMs?}       -> {elapsedMs}         asks connected peers until it has the blob
//   blobGet {id}                    -> {size, sha256}      sha256 in hex of the stored bytes
//   stats                           -> {ebtIn, historyIn, fallbacks, connects}
//                                      incoming ebt.replicate / createHistoryStream calls from peers,
//                                      outgoing ebt.replicate calls that failed (legacy fallback),
//                                      rpc connections with peers
//   rss                             -> {rss, hwm}          bytes; hwm = VmHWM of this process
'use strict'

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const readline = require('readline')

// ssb-logging and a few plugins print with console.log: keep stdout for answers.
console.log = console.info = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n')

function usage (msg) {
  process.stderr.write('server.js: ' + msg + '\n' +
    'usage: node server.js --dir T --port P --ws-port Q [--no-ebt] [--logging LEVEL]\n')
  process.exit(2)
}

function parseArgs (argv) {
  const opts = { dir: null, port: null, wsPort: null, ebt: true, logging: 'notice' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) usage('missing value for ' + a)
      return argv[++i]
    }
    if (a === '--dir') opts.dir = path.resolve(next())
    else if (a === '--port') opts.port = Number(next())
    else if (a === '--ws-port') opts.wsPort = Number(next())
    else if (a === '--no-ebt') opts.ebt = false
    else if (a === '--logging') opts.logging = next()
    else usage('unknown argument ' + a)
  }
  if (!opts.dir) usage('--dir is required')
  if (!Number.isInteger(opts.port) || opts.port < 1) usage('--port must be a port number')
  if (!Number.isInteger(opts.wsPort) || opts.wsPort < 1) usage('--ws-port must be a port number')
  return opts
}

const opts = parseArgs(process.argv.slice(2))
process.env.HOME = opts.dir // no ~/.ssb or ~/.ssbrc from the real home

const pull = require('pull-stream')
// ssb-config's defaults without rc, so that neither argv nor ssb_* env vars leak into the config.
const setDefaults = require('ssb-config/defaults')

const config = setDefaults('ssb', {
  path: opts.dir,
  host: '127.0.0.1',
  port: opts.port,
  ws: { port: opts.wsPort },
  gossip: { local: false, pub: false, global: false },
  logging: { level: opts.logging }
})

// The plugin list of ssb-server 16.0.1 bin.js `start`, in its order.
let stack = require('ssb-server')
const plugins = ['ssb-private1', 'ssb-onion', 'ssb-unix-socket', 'ssb-no-auth', 'ssb-plugins',
  'ssb-master', 'ssb-gossip', 'ssb-replicate', 'ssb-friends', 'ssb-blobs', 'ssb-invite', 'ssb-local',
  'ssb-logging', 'ssb-query', 'ssb-links', 'ssb-ws', 'ssb-ebt', 'ssb-ooo']
// Each plugin as ssb-server's own dependency resolves it (its nested copy first), not the newer
// top-level ones the Manyverse-stack tests pin (ssb-ebt 9, ssb-blobs 2, secret-stack 8).
const serverDir = path.dirname(require.resolve('ssb-server/package.json'))
for (const name of plugins) {
  if (name === 'ssb-ebt' && !opts.ebt) continue
  stack = stack.use(require(require.resolve(name, { paths: [serverDir] })))
}
const sbot = stack(config)

const stats = { ebtIn: 0, historyIn: 0, fallbacks: 0, connects: 0 }
// Remote calls run with `this` = the peer's rpc; local ones with `this` = sbot.
sbot.createHistoryStream.hook(function (fn, args) {
  if (this !== sbot) stats.historyIn++
  return fn.apply(this, args)
})
if (sbot.ebt) {
  sbot.ebt.replicate.hook(function (fn, args) {
    if (this !== sbot) stats.ebtIn++
    return fn.apply(this, args)
  })
}
sbot.on('rpc:connect', function (rpc) {
  if (rpc.id === sbot.id) return
  stats.connects++
  rpc.on('fallback:replicate', () => { stats.fallbacks++ })
})

// The latest message written per feed and when, and the waitFor calls pending on it.
const latest = {}
const waiters = new Set()
sbot.post(function (msg) {
  const v = msg.value
  latest[v.author] = { seq: v.sequence, at: Date.now() }
  for (const w of waiters) if (w.id === v.author && v.sequence >= w.seq) w.done(v.sequence)
}, false)

function arrivedAt (id, seq) {
  const l = latest[id]
  return l && l.seq === seq ? l.at : null
}

function withTimeout (ms, what, cb) {
  let finished = false
  const timer = setTimeout(() => finish(new Error('timeout after ' + ms + ' ms: ' + what())), ms)
  function finish (err, value) {
    if (finished) return
    finished = true
    clearTimeout(timer)
    cb(err, value)
  }
  return finish
}

function readBlob (id, cb) {
  pull(sbot.blobs.get(id), pull.collect((err, bufs) => {
    if (err) return cb(err)
    cb(null, Buffer.concat(bufs))
  }))
}

// Runs `total` async tasks in order with up to `window` of them in flight.
function pipelined (total, window, task, cb) {
  let started = 0
  let finished = 0
  let failed = false
  function startMore () {
    while (!failed && started < total && started - finished < window) {
      const i = started++
      task(i, (err) => {
        if (failed) return
        if (err) {
          failed = true
          return cb(err)
        }
        finished++
        if (finished === total) cb(null)
        else startMore()
      })
    }
  }
  if (total === 0) cb(null)
  else startMore()
}

const commands = {
  whoami (c, cb) { cb(null, { id: sbot.id }) },

  publish (c, cb) {
    const startedAt = Date.now()
    sbot.publish(c.content, (err, msg) => {
      if (err) return cb(err)
      cb(null, { key: msg.key, seq: msg.value.sequence, startedAt, at: Date.now() })
    })
  },

  publishMany (c, cb) {
    if (!Number.isInteger(c.n) || c.n < 1) return cb(new Error('n must be a positive integer'))
    const start = Date.now()
    let first = null
    let last = null
    // ssb-db assigns sequence numbers in call order, so a window of calls in flight keeps the
    // feed in order; each callback comes after its message is written.
    pipelined(c.n, 256, (i, done) => {
      sbot.publish({ type: 'post', text: 'message ' + (i + 1) }, (err, msg) => {
        if (err) return done(err)
        if (i === 0) first = msg.value.sequence
        if (i === c.n - 1) last = msg.value.sequence
        done()
      })
    }, (err) => {
      if (err) return cb(err)
      if (last - first !== c.n - 1) return cb(new Error('sequence numbers out of order'))
      cb(null, { first, last, ms: Date.now() - start })
    })
  },

  follow (c, cb) {
    const content = { type: 'contact', contact: c.id, following: c.following !== false }
    sbot.publish(content, (err, msg) => {
      if (err) return cb(err)
      cb(null, { key: msg.key, seq: msg.value.sequence })
    })
  },

  connect (c, cb) {
    const start = Date.now()
    sbot.gossip.connect(c.address, (err) => {
      if (err) return cb(err)
      cb(null, { ms: Date.now() - start })
    })
  },

  peers (c, cb) {
    cb(null, { peers: sbot.gossip.peers().map((p) => ({ key: p.key, state: p.state || null })) })
  },

  clock (c, cb) {
    sbot.getVectorClock((err, clock) => cb(err, { clock }))
  },

  waitFor (c, cb) {
    const start = Date.now()
    const timeoutMs = c.timeoutMs || 30000
    const w = { id: c.id, seq: c.seq, current: 0 }
    const finish = withTimeout(timeoutMs, () => 'feed ' + c.id + ' at seq ' + w.current +
      ', waiting for ' + c.seq, (err, seq) => {
      waiters.delete(w)
      if (err) return cb(err)
      cb(null, { seq, elapsedMs: Date.now() - start, arrivedAt: arrivedAt(c.id, c.seq) })
    })
    w.done = (seq) => finish(null, seq)
    // Listen first, then read the clock: the clock index catches up with the log before it
    // answers, so a message is either in the clock or still to come through `post`.
    waiters.add(w)
    sbot.getVectorClock((err, clock) => {
      if (err) return finish(err)
      w.current = Math.max(w.current, clock[c.id] || 0)
      if (w.current >= c.seq) finish(null, w.current)
    })
  },

  history (c, cb) {
    let count = 0
    let last = 0
    pull(sbot.createHistoryStream({ id: c.id }), pull.drain((msg) => {
      count++
      last = msg.value.sequence
    }, (err) => cb(err, { count, last })))
  },

  export (c, cb) {
    const out = fs.createWriteStream(c.path)
    let count = 0
    pull(sbot.createHistoryStream({ id: c.id, keys: true }), pull.drain((msg) => {
      count++
      out.write(JSON.stringify({ key: msg.key, value: msg.value, timestamp: msg.timestamp }) + '\n')
    }, (err) => {
      if (err) return cb(err)
      out.end(() => cb(null, { count }))
    }))
  },

  addFile (c, cb) {
    let lines
    try {
      lines = fs.readFileSync(c.path, 'utf8').split('\n').filter((l) => l.trim() !== '')
    } catch (err) {
      return cb(err)
    }
    const start = Date.now()
    pipelined(lines.length, 256, (i, done) => {
      let value
      try {
        const parsed = JSON.parse(lines[i])
        value = parsed.value && parsed.key ? parsed.value : parsed
      } catch (err) {
        return done(new Error('line ' + (i + 1) + ': ' + err.message))
      }
      sbot.add(value, (err) => done(err && new Error('line ' + (i + 1) + ': ' + err.message)))
    }, (err) => cb(err, { added: lines.length, ms: Date.now() - start }))
  },

  blobAdd (c, cb) {
    let bytes
    try {
      bytes = c.path ? fs.readFileSync(c.path) : Buffer.from(c.base64, 'base64')
    } catch (err) {
      return cb(err)
    }
    pull(pull.once(bytes), sbot.blobs.add((err, id) => cb(err, { id, size: bytes.length })))
  },

  blobHas (c, cb) {
    sbot.blobs.has(c.id, (err, has) => cb(err, { has }))
  },

  blobWant (c, cb) {
    const start = Date.now()
    const finish = withTimeout(c.timeoutMs || 30000, () => 'no peer gave blob ' + c.id,
      (err) => cb(err, { elapsedMs: Date.now() - start }))
    sbot.blobs.want(c.id, (err, has) => {
      if (err) return finish(err)
      if (!has) return finish(new Error('blob ' + c.id + ' not found'))
      finish(null)
    })
  },

  blobGet (c, cb) {
    readBlob(c.id, (err, bytes) => {
      if (err) return cb(err)
      cb(null, { size: bytes.length, sha256: crypto.createHash('sha256').update(bytes).digest('hex') })
    })
  },

  stats (c, cb) { cb(null, Object.assign({}, stats)) },

  rss (c, cb) {
    const status = fs.readFileSync('/proc/self/status', 'utf8')
    const m = /VmHWM:\s+(\d+) kB/.exec(status)
    cb(null, { rss: process.memoryUsage().rss, hwm: m ? Number(m[1]) * 1024 : null })
  }
}

function answer (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// Commands run one at a time, in order.
const queue = []
let busy = false
function runNext () {
  if (busy || !queue.length) return
  busy = true
  const line = queue.shift()
  let c
  try {
    c = JSON.parse(line)
  } catch (err) {
    return done(new Error('bad JSON: ' + err.message))
  }
  const fn = c && commands[c.cmd]
  if (!fn) return done(new Error('unknown command: ' + (c && c.cmd)))
  try {
    fn(c, done)
  } catch (err) {
    done(err)
  }
  function done (err, result) {
    answer(err ? { error: err.message || String(err) } : result)
    busy = false
    setImmediate(runNext)
  }
}

sbot.once('multiserver:listening', function () {
  const key = sbot.id.slice(1, -'.ed25519'.length)
  answer({ ready: true, id: sbot.id, address: 'net:127.0.0.1:' + opts.port + '~shs:' + key })
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    queue.push(line)
    runNext()
  })
  rl.on('close', () => sbot.close(() => process.exit(0)))
})
