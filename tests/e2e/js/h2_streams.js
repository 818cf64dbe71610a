// Several concurrent streaming chat requests on ONE HTTP/2 session, with
// Node's built-in http2 module over TLS (ALPN h2), verifying the gateway's
// certificate against the test CA.
//
//   node h2_streams.js <https-url> <ca.pem> <streams> <tokens>
//
// Prints one JSON line: {alpn, results: [{status, contentType, body, dataChunks}]}.
'use strict';
const http2 = require('node:http2');
const fs = require('node:fs');

const [url, caFile, nArg, tokensArg] = process.argv.slice(2);
const n = Number(nArg);
const tokens = Number(tokensArg);
const deadline = setTimeout(() => {
  console.error('timed out');
  process.exit(3);
}, 15000);

const session = http2.connect(url, { ca: fs.readFileSync(caFile) });
session.on('error', (e) => {
  console.error('session error: ' + e);
  process.exit(2);
});

const results = new Array(n);
let pending = n;
function finish() {
  clearTimeout(deadline);
  console.log(JSON.stringify({ alpn: session.alpnProtocol, results }));
  session.close();
}

for (let i = 0; i < n; i++) {
  const body = JSON.stringify({
    model: `node-${i}`, stream: true, messages: [{ role: 'user', content: 'Hello from node' }],
  });
  const req = session.request({
    ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json',
    'content-length': Buffer.byteLength(body), 'x-mock-tokens': String(tokens), 'x-mock-itl-ms': '10',
  });
  const r = { status: 0, contentType: '', body: '', dataChunks: 0 };
  req.setEncoding('utf8');
  req.on('response', (h) => {
    r.status = h[':status'];
    r.contentType = h['content-type'] || '';
  });
  req.on('data', (d) => {
    r.body += d;
    r.dataChunks += 1;
  });
  let settled = false;
  const done = () => {
    if (settled) return;
    settled = true;
    results[i] = r;
    if (--pending === 0) finish();
  };
  req.on('end', done);
  req.on('error', (e) => {
    r.error = String(e);
    done();
  });
  req.end(body);
}
