#!/usr/bin/env node
// Make deterministic SSB feeds with the real ssb-keys / ssb-validate.
//
// Usage: node make-feed.js --feeds F --messages N --out FILE
//                          [--seed S] [--interleave] [--author-first]
//
// Writes FILE: one compact JSON line per message, {"key","value","timestamp"}
// (the createHistoryStream-with-keys shape). Default order: feed 0 seq 1..N,
// then feed 1 seq 1..N, ...; with --interleave: seq 1 of every feed, then
// seq 2 of every feed, ... Each feed's messages are always in sequence order.
// Writes FILE.secrets.json: [{index, seed, id, public, private, curve}].
//
// Every message is made by ssb-validate `create` (key order previous,
// sequence, author, ...) and checked with ssb-validate `append`. With
// --author-first the value is built as previous, author, sequence, ... (the
// other order ssb-validate accepts) and signed with ssb-keys `signObj`.
// The same arguments always give byte-identical output.
'use strict'

const fs = require('fs')
const crypto = require('crypto')
const ssbKeys = require('ssb-keys')
const V = require('ssb-validate')

const MAX_SIZE = 8192
const BASE_TIME = 1600000000000

function usage (msg) {
  if (msg) process.stderr.write('make-feed.js: ' + msg + '\n')
  process.stderr.write('usage: node make-feed.js --feeds F --messages N --out FILE [--seed S] [--interleave] [--author-first]\n')
  process.exit(2)
}

function parseArgs (argv) {
  const opts = { feeds: null, messages: null, out: null, seed: 'ssb-sneakernet', interleave: false, authorFirst: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) usage('missing value for ' + a)
      return argv[++i]
    }
    if (a === '--feeds') opts.feeds = Number(next())
    else if (a === '--messages') opts.messages = Number(next())
    else if (a === '--out') opts.out = next()
    else if (a === '--seed') opts.seed = next()
    else if (a === '--interleave') opts.interleave = true
    else if (a === '--author-first') opts.authorFirst = true
    else usage('unknown argument ' + a)
  }
  if (!Number.isInteger(opts.feeds) || opts.feeds < 1) usage('--feeds must be a positive integer')
  if (!Number.isInteger(opts.messages) || opts.messages < 1) usage('--messages must be a positive integer')
  if (!opts.out) usage('--out is required')
  return opts
}

// Small deterministic PRNG (mulberry32) seeded from sha256.
function rng (seedText) {
  let s = crypto.createHash('sha256').update(seedText).digest().readUInt32LE(0)
  return function () {
    s = (s + 0x6D2B79F5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const WORDS = ['sneakernet', 'scuttlebutt', 'gossip', 'feed', 'pub', 'stick', 'usb', 'offline',
  'Straße', 'Grüße', 'naïve', 'café', 'it’s', '“quoted”', '日本語', 'привет', '🦀', '🐢🌊', '𝄞', 'a\u0301']

function words (rand, n) {
  const out = []
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(rand() * WORDS.length)])
  return out.join(' ')
}

// One content object for message `seq` (1-based) of feed `f`.
function makeContent (rand, f, seq, ids) {
  const kind = seq === 1 ? 0 : (seq * 7 + f) % 9
  switch (kind) {
    case 0: return { type: 'post', text: 'hello from feed ' + f + ': ' + words(rand, 5) + ' ß 😀 it’s' }
    case 1: return {
      type: 'post',
      text: 'escapes: "dq" \\ back\\slash \t tab\nnewline \r cr \b bs \f ff \u0000 nul \u0001 \u001f \u007f del \u2028 \u2029 </script> ' + seq,
      mentions: []
    }
    case 2: return {
      type: 'test-numbers',
      ints: [0, 1, -1, 42, seq, 2147483647, -2147483648, 9007199254740991, -9007199254740991],
      floats: [0.1, 0.5, -2.75, 1e21, 1e-7, 1e-6, 1e20, 123456789.125, 1.7976931348623157e308, 5e-324, 2 ** 70, -1e-300],
      random: [rand(), rand() * 1e6, -rand() * 1e-9, Math.floor(rand() * 1e15)]
    }
    case 3: return {
      type: 'test-nested',
      empty: {},
      emptyList: [],
      deep: { a: { b: { c: [1, [2, [3, {}, []]], { d: null }] } } },
      flags: [true, false, null],
      text: words(rand, 3)
    }
    case 4: return { type: 'test-keys', 10: 'ten', 2: 'two', a: 'a', 0: { 1: 1, b: 'b', '01': 'not an index', '-1': 'neg' }, z: [] }
    case 5: {
      const other = ids[(f + 1 + Math.floor(rand() * ids.length)) % ids.length]
      return { type: 'contact', contact: other, following: rand() < 0.8, blocking: false }
    }
    case 6: return { type: 'about', about: ids[f], name: 'feed ' + f + ' 👾', description: 'Ünïcödé – “about”' }
    case 7: return { type: 'vote', vote: { link: '%' + crypto.createHash('sha256').update('m' + seq).digest('base64') + '.sha256', value: 1, expression: '❤️' } }
    default: return { type: 'post', text: words(rand, 1 + Math.floor(rand() * 40)), channel: 'test', root: null }
  }
}

// Whether message `seq` should be padded up to the size limit, and how.
function bigKind (seq, n) {
  if (n < 10) return null
  if (seq === n - 1) return 'ascii' // exactly 8192 UTF-16 units, ASCII padding
  if (seq === Math.floor(n / 2)) return 'bmp' // many 2-byte chars: > 8192 UTF-8 bytes
  if (seq === Math.floor(n / 3)) return 'astral' // emoji padding (surrogate pairs)
  return null
}

function encodedLength (msg) {
  return JSON.stringify(msg, null, 2).length
}

function buildValue (state, keys, content, timestamp, authorFirst) {
  if (!authorFirst) return V.create(state, keys, null, content, timestamp)
  const msg = {
    previous: state ? state.id : null,
    author: keys.id,
    sequence: state ? state.sequence + 1 : 1,
    timestamp,
    hash: 'sha256',
    content
  }
  return ssbKeys.signObj(keys, null, msg)
}

// Pad `content.text` so the signed message is as close to MAX_SIZE as the padding unit allows.
function padToLimit (state, keys, content, timestamp, kind, authorFirst) {
  const unit = kind === 'bmp' ? 'ß' : kind === 'astral' ? '🦀' : 'x'
  const unitLen = unit.length
  content.text = content.text || ''
  const base = encodedLength(buildValue(state, keys, content, timestamp, authorFirst))
  const room = MAX_SIZE - base
  content.text += unit.repeat(Math.floor(room / unitLen)) + 'x'.repeat(room % unitLen)
  return content
}

function main () {
  const opts = parseArgs(process.argv.slice(2))
  const feeds = []
  for (let f = 0; f < opts.feeds; f++) {
    const seed = crypto.createHash('sha256').update(opts.seed + '/feed/' + f).digest()
    const keys = ssbKeys.generate('ed25519', seed)
    feeds.push({ index: f, seed, keys, rand: rng(opts.seed + '/content/' + f) })
  }
  const ids = feeds.map(x => x.keys.id)
  const vstate = V.initial()
  const fd = fs.openSync(opts.out, 'w')
  let buf = []
  let bufLen = 0
  const flush = () => {
    if (buf.length) fs.writeSync(fd, buf.join(''))
    buf = []
    bufLen = 0
  }

  const emit = (feed, seq) => {
    // some timestamps have a fraction, like monotonic-timestamp's
    const timestamp = BASE_TIME + seq * 1000 + feed.index + (seq % 10 === 3 ? 0.001 : 0)
    let content = makeContent(feed.rand, feed.index, seq, ids)
    const big = bigKind(seq, opts.messages)
    const fstate = vstate.feeds[feed.keys.id]
    if (big) content = padToLimit(fstate, feed.keys, { type: 'post', text: big + ' ' + words(feed.rand, 3) + ' ' }, timestamp, big, opts.authorFirst)
    const value = buildValue(fstate, feed.keys, content, timestamp, opts.authorFirst)
    V.append(vstate, null, value) // throws if ssb-validate rejects it
    const kvt = vstate.queue.pop()
    vstate.queue.length = 0
    if (big === 'ascii' && encodedLength(value) !== MAX_SIZE) throw new Error('padding missed the size limit')
    const line = JSON.stringify({ key: kvt.key, value, timestamp: timestamp + 500 }) + '\n'
    buf.push(line)
    bufLen += line.length
    if (bufLen > 1 << 20) flush()
  }

  if (opts.interleave) {
    for (let seq = 1; seq <= opts.messages; seq++) for (const feed of feeds) emit(feed, seq)
  } else {
    for (const feed of feeds) for (let seq = 1; seq <= opts.messages; seq++) emit(feed, seq)
  }
  flush()
  fs.closeSync(fd)

  const secrets = feeds.map(x => ({
    index: x.index,
    seed: x.seed.toString('hex'),
    id: x.keys.id,
    curve: x.keys.curve,
    public: x.keys.public,
    private: x.keys.private
  }))
  fs.writeFileSync(opts.out + '.secrets.json', JSON.stringify(secrets, null, 2) + '\n')
}

main()
