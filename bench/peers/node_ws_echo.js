// Node ws echo server: every message goes back as it came.
//   node node_ws_echo.js PORT [CERT KEY]   (permessage-deflate on, as ws
//   offers it; with CERT and KEY, wss:// on an https server, as ws's
//   documentation serves it)
'use strict';
const fs = require('fs');
const https = require('https');
const path = require('path');
const { WebSocketServer } = require(require.resolve('ws', {
  paths: [path.join(__dirname, '..', 'node_modules'),
          path.join(__dirname, '..', '..', 'spec', 'interop', 'node_modules')],
}));

const [port, cert, key] = [Number(process.argv[2]), process.argv[3],
                           process.argv[4]];
const options = { perMessageDeflate: true, maxPayload: 16 << 20 };
let wss;
if (cert) {
  const server = https.createServer({
    cert: fs.readFileSync(cert), key: fs.readFileSync(key || cert),
  });
  wss = new WebSocketServer({ server, ...options });
  server.listen(port, '127.0.0.1');
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, ...options });
}
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
