#!/usr/bin/env node
// Validate SSB messages with the real ssb-validate.
//
// Usage: node validate.js FILE|- [--hmac BASE64KEY]
//
// Input: JSON lines (blank lines are skipped). Each line is either a bare
// message value or an object {key, value, ...} (createHistoryStream with
// keys). Messages are appended in file order with one ssb-validate state,
// so each feed must come in sequence order starting at 1; feeds may be
// interleaved. When a key is present it must equal ssb-validate.id(value).
// After an invalid message, later messages of the same feed fail too (their
// predecessor was never accepted).
//
// Output: one JSON line {"valid":n,"invalid":[{"line":i,"error":"..."}],"ids":[...]}
// where `line` is 1-based and `ids` lists the ids of the valid messages in
// input order. Exit code 0 if every message is valid, 1 if not, 2 on usage errors.
'use strict'

const fs = require('fs')
const V = require('ssb-validate')

function usage (msg) {
  process.stderr.write('validate.js: ' + msg + '\nusage: node validate.js FILE|- [--hmac BASE64KEY]\n')
  process.exit(2)
}

function parseArgs (argv) {
  let file = null
  let hmac = null
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--hmac') {
      if (i + 1 >= argv.length) usage('missing value for --hmac')
      hmac = argv[++i]
    } else if (file === null) file = argv[i]
    else usage('unexpected argument ' + argv[i])
  }
  if (file === null) usage('missing FILE (use - for stdin)')
  return { file, hmac }
}

// Split a JSON line into {key, value}; key is undefined for a bare value.
function unwrap (obj) {
  if (obj && typeof obj === 'object' && !Array.isArray(obj) &&
      Object.prototype.hasOwnProperty.call(obj, 'key') &&
      obj.value && typeof obj.value === 'object') {
    return { key: obj.key, value: obj.value }
  }
  return { key: undefined, value: obj }
}

function main () {
  const { file, hmac } = parseArgs(process.argv.slice(2))
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8')
  const lines = text.split('\n')
  const state = V.initial()
  const result = { valid: 0, invalid: [], ids: [] }

  lines.forEach((line, i) => {
    if (line.trim() === '') return
    const fail = (error) => result.invalid.push({ line: i + 1, error: String(error) })
    let obj
    try {
      obj = JSON.parse(line)
    } catch (err) {
      return fail('invalid JSON: ' + err.message)
    }
    const { key, value } = unwrap(obj)
    try {
      V.append(state, hmac, value)
    } catch (err) {
      return fail(err && err.message ? err.message : err)
    } finally {
      state.queue.length = 0 // keep memory flat
    }
    const id = V.id(value)
    if (key !== undefined && key !== id) return fail('key mismatch: line has ' + key + ' but ssb-validate.id gives ' + id)
    result.valid += 1
    result.ids.push(id)
  })

  process.stdout.write(JSON.stringify(result) + '\n', () => {
    process.exit(result.invalid.length === 0 ? 0 : 1)
  })
}

main()
