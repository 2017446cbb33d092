// mailward in front of nodemailer's smtp-server: the library guide's example
// (docs/library.md), kept as a file that the tests run.
import { SMTPServer } from 'smtp-server';
import { createMailward, smtpReplyText, withHeaderChanges, type Mailward } from '../lib/index';

export interface ExampleServer {
  server: SMTPServer;
  mailward: Mailward;
  /** Accepted messages with the headers mailward asked for, as they would be delivered. */
  delivered: Buffer[];
  close(): Promise<void>;
}

export function startExampleServer(port: number, configDir?: string): Promise<ExampleServer> {
  const mailward = createMailward({ configDir });
  const delivered: Buffer[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    async onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      const { verdict, context } = await mailward.scan({
        ip: session.remoteAddress,
        helo: session.hostNameAppearsAs,
        mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        rcptTo: session.envelope.rcptTo.map((r) => r.address),
        relaying: Boolean(session.user),
        localHostname: 'mx.example.com',
        raw: Buffer.concat(chunks),
      });
      if (verdict.action === 'reject' || verdict.action === 'soft_reject') {
        const err = Object.assign(new Error(smtpReplyText(verdict)), { responseCode: verdict.action === 'reject' ? 550 : 451 });
        return callback(err);
      }
      // Deliver (here: keep) the message with the header edits mailward asked for: removals (a forged
      // Authentication-Results in our name), its fields on top, the sender's it kept where they were.
      delivered.push(withHeaderChanges(context.raw ?? Buffer.alloc(0), context.headerChanges, [['X-Mailward-Ref', verdict.ref]]));
      callback(null, `Message accepted (ref ${verdict.ref})`);
    },
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () =>
      resolve({
        server,
        mailward,
        delivered,
        close: async () => {
          await new Promise<void>((done) => server.close(() => done()));
          await mailward.close();
        },
      }),
    );
  });
}
