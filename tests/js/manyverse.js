#!/usr/bin/env node
// A client on Manyverse's stack, driven over stdin/stdout like server.js, one JSON object per line.
//
// Usage: node manyverse.js --dir T --port P
//
// The stack is Manyverse's backend (src/backend/ssb.ts) less its UI, Bluetooth, rooms, LAN and
// search plugins: secret-stack 8.1.0 with ssb-caps, ssb-master, ssb-db2 8 and its compat
// plugins, ssb-ebt 9 (classic plus the bendy-butt format, so it also calls
// ebt.replicateFormat), ssb-friends 5, ssb-replication-scheduler 3, ssb-conn 6,
// ssb-invite-client and ssb-blobs 2. It listens on 127.0.0.1:P; ssb-conn's scheduler starts as
// Manyverse starts it. Its identity is T/secret (created if missing), its data lives in T.
// Everything the stack logs (console.*) goes to stderr, where tests look for exceptions.
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
//   blobWant {id}                   -> {has}        ssb-blobs' blobs.want
'use strict'

const fs = require('fs')
const path = require('path')
const readline = require('readline')
const util = require('util')

console.log = console.info = console.warn = console.error =
  (...args) => process.stderr.write(util.format(...args) + '\n')

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
const settings = {
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

const config = Object.assign({ global: settings }, settings)

// secret-stack 8 hands each plugin only its own config section and `global`; these plugins
// read `path`, `keys`, `friends`, `conn`… at the top level, as on secret-stack 6. Give them
// the whole config.
function whole (plugin) {
  if (Array.isArray(plugin)) return plugin.map(whole)
  // A plugin is an object or class with `init`, or a bare init function (no name).
  const bare = typeof plugin.init !== 'function'
  const init = bare ? plugin : plugin.init.bind(plugin)
  return Object.assign({}, plugin, {
    name: bare ? undefined : plugin.name,
    init: (api, _own, permissions, manifest) => init(api, config, permissions, manifest)
  })
}

const ssb = SecretStack({ caps })
  .use(whole(require('ssb-master')))
  .use(whole(require('ssb-db2')))
  .use(whole(require('ssb-db2/compat/db')))
  .use(whole(require('ssb-db2/compat/ebt')))
  .use(whole(require('ssb-db2/compat/log-stream')))
  .use(whole(require('ssb-db2/compat/history-stream')))
  .use(whole(require('ssb-ebt')))
  .use(whole(require('ssb-friends')))
  .use(whole(require('ssb-replication-scheduler')))
  .use(whole(require('ssb-conn')))
  .use(whole(require('ssb-invite-client')))
  .use(whole(require('ssb-blobs')))
  .call(null, config)
ssb.ebt.registerFormat(require('ssb-ebt/formats/bendy-butt'))

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

  blobWant (c, cb) {
    ssb.blobs.want(c.id, (err, has) => cb(err, { has }))
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

