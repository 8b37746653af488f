import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { makeTestCertificates, OPENSSL } from '../testing/fixtures/certificates.ts';
import { answersInTls, plainUrlToTlsPort } from './tls.ts';

// answersInTls against servers on 127.0.0.1 made here: TLS ones (with a certificate openssl made, one of them
// requiring a client certificate), a plain one that answers with a protocol header of its own and closes, one
// that says nothing, and a port nobody listens on.
const dir = mkdtempSync(join(tmpdir(), 'factline-answers-in-tls-'));
const skip = existsSync(OPENSSL) ? false : `${OPENSSL} is not installed (it makes the test certificates)`;
const servers: Server[] = [];
const sockets = new Set<Socket>();
after(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  rmSync(dir, { recursive: true, force: true });
});

const listening = async (server: Server): Promise<number> => {
  servers.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
};

let certificates: ReturnType<typeof makeTestCertificates> | undefined;
const tlsServer = (requireClientCertificate: boolean) => {
  certificates ??= makeTestCertificates(dir);
  const server = createTlsServer({
    cert: readFileSync(join(dir, 'server.pem')),
    key: readFileSync(join(dir, 'server.key')),
    ca: certificates.ca,
    requestCert: requireClientCertificate,
    rejectUnauthorized: requireClientCertificate,
  });
  server.on('tlsClientError', () => undefined);
  return listening(server);
};

describe('answersInTls and plainUrlToTlsPort', { skip }, () => {
  it('is true for a TLS server, whatever its certificate, and for one that requires a client certificate', async () => {
    assert.equal(await answersInTls('127.0.0.1', await tlsServer(false), 2000), true);
    assert.equal(await answersInTls('127.0.0.1', await tlsServer(true), 2000), true);
  });

  it('is false for a plain server that answers with a header of its own and closes, and for a closed port', async () => {
    const plain = await listening(
      createTcpServer((socket) => {
        socket.end(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
      }),
    );
    assert.equal(await answersInTls('127.0.0.1', plain, 2000), false);
    const closed = await listening(createTcpServer());
    await new Promise((resolve) => servers.pop()?.close(resolve));
    assert.equal(await answersInTls('127.0.0.1', closed, 2000), false);
  });

  it('is false once the wait has passed for a server that says nothing', async () => {
    const silent = await listening(createTcpServer(() => undefined));
    const started = Date.now();
    assert.equal(await answersInTls('127.0.0.1', silent, 300), false);
    const took = Date.now() - started;
    assert.ok(took >= 290 && took < 5000, `answered after ${took} ms`);
  });

  it("plainUrlToTlsPort: a reset plain-text URL's TLS port is a non-retryable TransportError naming the scheme to use; anything else undefined", async () => {
    const port = await tlsServer(false);
    const url = `redis://127.0.0.1:${port}`;
    const settings = {
      server: 'Redis',
      scheme: 'redis',
      defaultPort: 6379,
      waitMs: 2000,
    };
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const refusal = await plainUrlToTlsPort(url, reset, settings);
    assert.equal(refusal?.code, 'TRANSPORT');
    assert.equal(refusal?.retryable, false);
    assert.equal(refusal?.cause, reset);
    assert.match(
      refusal?.message ?? '',
      new RegExp(
        `^Redis at ${url}: port ${port} answers in TLS, and the URL asks for plain text \\(read ECONNRESET\\): use rediss://`,
      ),
    );
    // Not asked: another failure, a URL that asks for TLS already, a URL that does not parse.
    assert.equal(await plainUrlToTlsPort(url, new Error('connect ECONNREFUSED'), settings), undefined);
    assert.equal(await plainUrlToTlsPort(`rediss://127.0.0.1:${port}`, reset, settings), undefined);
    assert.equal(await plainUrlToTlsPort('not a url', reset, settings), undefined);
    // Asked, and the port does not answer in TLS.
    const plain = await listening(createTcpServer((socket) => socket.end('-ERR not TLS\r\n')));
    assert.equal(await plainUrlToTlsPort(`redis://127.0.0.1:${plain}`, reset, settings), undefined);
  });
});
