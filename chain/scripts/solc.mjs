// Run solc-js (the exact version pinned in chain/package.json) on a standard-JSON input
// read from stdin; print {"version": ..., "output": <standard-JSON output>} on stdout.
// Driven by chain/compile.py, which owns the input settings and the artifact layout.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const solc = require('solc')

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const input = Buffer.concat(chunks).toString('utf8')
const output = JSON.parse(solc.compile(input))
process.stdout.write(JSON.stringify({ version: solc.version(), output }))
