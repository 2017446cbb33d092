// Load generator, run as its own process so the client does not share a CPU
// budget with the server under test more than it must. Sends `count` small
// messages over `concurrency` connections (each connection sends one message
// after another) and prints one JSON line: elapsed time and per-message latencies.
import nodemailer from 'nodemailer';

interface LoadArgs {
  port: number;
  count: number;
  concurrency: number;
}

function message(i: number): string {
  return [
    'From: Load Test <load@example.net>',
    `To: user${i % 50}@example.com`,
    `Subject: Benchmark message ${i}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <bench-${process.pid}-${i}@example.net>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Hello user ${i},`,
    '',
    'This is a short benchmark message with a few ordinary sentences in it, so that',
    'content checks have something to read. Nothing to see here.',
    '',
  ].join('\r\n');
}

async function worker(args: LoadArgs, next: () => number | undefined, latencies: number[], codes: Record<string, number>): Promise<void> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: args.port,
    pool: true,
    maxConnections: 1,
    maxMessages: Infinity,
    ignoreTLS: true,
    name: 'load.example.net',
  } as any);
  for (let i = next(); i !== undefined; i = next()) {
    const started = process.hrtime.bigint();
    let code = '250';
    try {
      await transport.sendMail({ envelope: { from: 'load@example.net', to: [`user${i % 50}@example.com`] }, raw: message(i) });
    } catch (err: any) {
      code = String(err.responseCode ?? 'error');
    }
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
    codes[code] = (codes[code] ?? 0) + 1;
  }
  transport.close();
}

export async function runLoad(args: LoadArgs): Promise<{ elapsedMs: number; latencies: number[]; codes: Record<string, number> }> {
  let sent = 0;
  const next = () => (sent < args.count ? sent++ : undefined);
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: args.concurrency }, () => worker(args, next, latencies, codes)));
  return { elapsedMs: Number(process.hrtime.bigint() - started) / 1e6, latencies, codes };
}

if (require.main === module) {
  const [port, count, concurrency] = process.argv.slice(2).map(Number);
  runLoad({ port: port!, count: count!, concurrency: concurrency! }).then((result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  });
}
