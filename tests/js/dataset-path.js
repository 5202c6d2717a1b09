#!/usr/bin/env node
// Print the absolute path of ssb-validation-dataset's data.json (AGPL-3.0,
// installed from npm, never copied into this repository): a JSON array of
// 126 cases {state, hmacKey, message, valid, error, id}.
'use strict'
process.stdout.write(require.resolve('ssb-validation-dataset/data.json') + '\n')
