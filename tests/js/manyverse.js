#!/usr/bin/env node
// A client on Manyverse's stack, driven over stdin/stdout like server.js, one JSON object per line.
//
// Usage: node manyverse.js --dir T --port P
//
// The stack is Manyverse's backend (src/backend/ssb.ts) less its UI, Bluetooth, rooms, LAN and
// search plugins: secret-stack 6.4.1 with ssb-caps, ssb-master, ssb-db2 8 and its compat
// plugins, ssb-ebt 9, ssb-friends 5, ssb-replication-scheduler 3, ssb-conn 6, ssb-invite-client
// and ssb-blobs 2. It listens on 127.0.0.1:P; ssb-conn's scheduler starts as Manyverse starts it.
// Its identity is T/secret (created if missing), its data lives in T.
//
// Once listening it prints {"ready":true,"id":"@…"}. Then each input line is one command
// {"cmd":NAME,…}; each gets exactly one answer line, in order: a result object or {"error":"…"}.
// Stdin EOF closes it and exits 0. Logs go to stderr.
//
// Commands:
//   whoami                          -> {id}
//   publish {content}               -> {key, seq}
//   inviteAccept {code}             -> {accepted}   ssb-invite-client's invite.accept; an error
//                                      carries the messages of its clarify-error chain
//   connect {address}               -> {ms}         ssb-conn connect with our own key
//   clock                           -> {clock}      getVectorClock
//   waitFor {id, seq, timeoutMs?}   -> {seq}        answers when feed id holds seq
//   follows {id}                    -> {following}  whether our feed follows id (ssb-friends)
'use strict'

const fs = require('fs')
const path = require('path')
const readline = require('readline')

console.log = console.info = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n')

function usage (msg) {
  process.stderr.write('manyverse.js: ' + msg + '\nusage: node manyverse.js --dir T --port P\n')
  process.exit(2)
}

const opts = { dir: null, port: null }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--dir') opts.dir = path.resolve(argv[++i])
  else if (argv[i] === '--port') opts.port = Number(argv[++i])
  else usage('unknown argument ' + argv[i])
}
if (!opts.dir) usage('--dir is required')
if (!Number.isInteger(opts.port) || opts.port < 1) usage('--port must be a port number')
process.env.HOME = opts.dir
fs.mkdirSync(opts.dir, { recursive: true })

const SecretStack = require('secret-stack')
const caps = require('ssb-caps')
const ssbKeys = require('ssb-keys')


const keys = ssbKeys.loadOrCreateSync(path.join(opts.dir, 'secret'))
const config = {
  caps,
  keys,
  path: opts.dir,
  host: '127.0.0.1',
  port: opts.port,
  blobs: { sympathy: 2 },
  conn: { autostart: false },
  friends: { hops: 2, hookAuth: false },
  connections: {
    incoming: { net: [{ scope: 'device', transform: 'shs', host: '127.0.0.1', port: opts.port }] },
    outgoing: { net: [{ transform: 'shs' }] }
  }
}

const ssb = SecretStack()
  .use(require('ssb-master'))
  .use(require('ssb-db2'))
  .use(require('ssb-db2/compat/db'))
  .use(require('ssb-db2/compat/ebt'))
  .use(require('ssb-db2/compat/log-stream'))
  .use(require('ssb-db2/compat/history-stream'))
  .use(require('ssb-ebt'))
  .use(require('ssb-friends'))
  .use(require('ssb-replication-scheduler'))
  .use(require('ssb-conn'))
  .use(require('ssb-invite-client'))
  .use(require('ssb-blobs'))
  .call(null, config)

// An error with the lines of its stack that are not frames: clarify-error keeps the cause
// ("  Error: invite has been used up") only there, under its own message.
function messages (err) {
  const text = (err && (err.stack || err.message)) || String(err)
  return new Error(text.split('\n').filter((l) => !/^\s+at /.test(l)).map((l) => l.trim()).join(': '))
}

const commands = {
  whoami (c, cb) { cb(null, { id: ssb.id }) },

  publish (c, cb) {
    ssb.db.create({ content: c.content }, (err, msg) => {
      if (err) return cb(err)
      cb(null, { key: msg.key, seq: msg.value.sequence })
    })
  },

  inviteAccept (c, cb) {
    ssb.invite.accept(c.code, (err) => {
      if (err) return cb(messages(err))
      cb(null, { accepted: true })
    })
  },

  connect (c, cb) {
    const start = Date.now()
    ssb.conn.connect(c.address, (err) => cb(err, { ms: Date.now() - start }))
  },

  clock (c, cb) {
    ssb.getVectorClock((err, clock) => cb(err, { clock }))
  },

  waitFor (c, cb) {
    const deadline = Date.now() + (c.timeoutMs || 30000)
    ;(function poll () {
      ssb.getVectorClock((err, clock) => {
        if (err) return cb(err)
        const seq = clock[c.id] || 0
        if (seq >= c.seq) return cb(null, { seq })
        if (Date.now() > deadline) {
          return cb(new Error('timeout: feed ' + c.id + ' at seq ' + seq + ', waiting for ' + c.seq))
        }
        setTimeout(poll, 100)
      })
    })()
  },

  follows (c, cb) {
    ssb.friends.isFollowing({ source: ssb.id, dest: c.id }, (err, following) => {
      cb(err, { following })
    })
  }
}

function answer (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

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

ssb.once('multiserver:listening', function () {
  // Manyverse starts the connection scheduler once the app is up.
  ssb.conn.start()
  answer({ ready: true, id: ssb.id })
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    queue.push(line)
    runNext()
  })
  rl.on('close', () => ssb.close(() => process.exit(0)))
})

