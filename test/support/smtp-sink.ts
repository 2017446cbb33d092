// An SMTP server on 127.0.0.1 (a free port) that accepts every message and
// keeps it with its envelope, for tests in which a real MTA delivers mail
// (e.g. Haraka's outbound queue) and the test checks where it arrived.
import { SMTPServer } from 'smtp-server';

export interface SinkMessage {
  /** The EHLO/HELO name the client gave. */
  helo: string;
  remoteAddress: string;
  mailFrom: string;
  rcptTo: string[];
  /** The message as received (CRLF line ends, dot-unstuffed). */
  raw: string;
}

export interface SmtpSink {
  port: number;
  /** Messages received so far, in order of arrival. */
  messages: SinkMessage[];
  stop(): Promise<void>;
}

export interface SinkOptions {
  /** Default: a free one. */
  port?: number;
  /** Runs once the message is in, before the 250 goes out: a slow MTA, or something that happens meanwhile. */
  beforeReply?: (message: SinkMessage) => Promise<void>;
}

export async function startSmtpSink(name = 'sink.test', options: SinkOptions = {}): Promise<SmtpSink> {
  const messages: SinkMessage[] = [];
  const server = new SMTPServer({
    name,
    authOptional: true,
    // Plain SMTP: no certificate to set up, and the client must not need one.
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    closeTimeout: 1000,
    async onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      const message: SinkMessage = {
        helo: session.hostNameAppearsAs,
        remoteAddress: session.remoteAddress,
        mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        rcptTo: session.envelope.rcptTo.map((r) => r.address),
        raw: Buffer.concat(chunks).toString('utf8'),
      };
      messages.push(message);
      const number = messages.length;
      await options.beforeReply?.(message);
      callback(null, `Kept as message ${number}`);
    },
  });
  server.on('error', () => {});
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve((server.server.address() as { port: number }).port));
  });
  return {
    port,
    messages,
    stop: () => new Promise<void>((done) => server.close(() => done())),
  };
}
