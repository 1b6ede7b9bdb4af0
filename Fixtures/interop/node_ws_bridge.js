// A bridge to node's `ws` (Debian's node-ws): its own permessage-deflate negotiation, Sender and
// Receiver, without sockets. Reads one JSON request on stdin, writes one JSON answer on stdout.
//
//   {"role": "server"|"client", "offer": "...", "response": "..."?, "send": [[binary, hex]], "receive": hex}
//
// role is ws's side. As a server it answers `offer`; as a client it offers and accepts `response`.
// It then sends `send` (compressed when negotiated) and decodes `receive` (the other side's frames).
// Answer: {"answer": header or null, "frames": hex, "messages": [[binary, hex]], "error": string|null}
'use strict';
const path = '/usr/share/nodejs/ws/lib/';
const PerMessageDeflate = require(path + 'permessage-deflate');
const Sender = require(path + 'sender');
const Receiver = require(path + 'receiver');
const { parse, format } = require(path + 'extension');

let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const isServer = req.role === 'server';
  const pmd = new PerMessageDeflate({ threshold: 0 }, isServer, 0);
  let answer = null;
  if (isServer) {
    const offers = parse(req.offer)['permessage-deflate'];
    answer = format({ 'permessage-deflate': [pmd.accept(offers)] });
  } else {
    pmd.accept(parse(req.response)['permessage-deflate']);
  }
  const extensions = { 'permessage-deflate': pmd };
  const chunks = [];
  const socket = { cork() {}, uncork() {}, write(b, cb) { chunks.push(Buffer.from(b)); if (cb) process.nextTick(cb); return true; } };
  const mask = isServer ? undefined : (m) => { m[0] = 0x11; m[1] = 0x22; m[2] = 0x33; m[3] = 0x44; return m; };
  const sender = new Sender(socket, extensions, mask);
  const messages = [];
  let error = null;
  const receiver = new Receiver({ extensions, isServer, maxPayload: 0 });
  receiver.on('message', (data, isBinary) => messages.push([isBinary, Buffer.from(data).toString('hex')]));
  receiver.on('error', (e) => (error = e.message));
  let pending = req.send.length;
  const finish = () => {
    receiver.write(Buffer.from(req.receive, 'hex'));
    // Decompression is asynchronous: give zlib a moment to deliver.
    setTimeout(() => {
      process.stdout.write(JSON.stringify({ answer, frames: Buffer.concat(chunks).toString('hex'), messages, error }));
      pmd.cleanup();
      process.exit(0);
    }, 300);
  };
  const sendNext = (i) => {
    if (i === req.send.length) return finish();
    const [binary, hex] = req.send[i];
    sender.send(Buffer.from(hex, 'hex'), { binary, compress: true, fin: true, mask: !isServer }, () => sendNext(i + 1));
  };
  sendNext(0);
});
