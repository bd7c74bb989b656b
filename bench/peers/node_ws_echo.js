// Node ws echo server: every message goes back as it came.
//   node node_ws_echo.js PORT   (permessage-deflate on, as ws offers it)
'use strict';
const path = require('path');
const { WebSocketServer } = require(require.resolve('ws', {
  paths: [path.join(__dirname, '..', 'node_modules'),
          path.join(__dirname, '..', '..', 'spec', 'interop', 'node_modules')],
}));

const port = Number(process.argv[2]);
const wss = new WebSocketServer({
  host: '127.0.0.1', port, perMessageDeflate: true, maxPayload: 16 << 20,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
