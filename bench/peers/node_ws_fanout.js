// Node ws fan-out server: clients of "/" are subscribers; every message from
// a client of "/pub" is sent to each subscriber (the broadcast loop of the
// ws README).   node node_ws_fanout.js PORT
'use strict';
const path = require('path');
const { WebSocketServer } = require(require.resolve('ws', {
  paths: [path.join(__dirname, '..', 'node_modules'),
          path.join(__dirname, '..', '..', 'spec', 'interop', 'node_modules')],
}));

const port = Number(process.argv[2]);
const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096 });
const subscribers = new Set();
wss.on('connection', (ws, req) => {
  ws.on('error', () => {});
  if (req.url === '/pub') {
    ws.on('message', (data, isBinary) => {
      for (const s of subscribers) s.send(data, { binary: isBinary });
    });
  } else {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
