/**
 * authenticate() throughput (one mailauth call per message: SPF, DKIM, DMARC,
 * ARC) with a warm DNS cache, against the real test DNS server on loopback.
 * Two messages: a DKIM-signed pass/pass/pass message (one RSA-2048 verify) and
 * an ARC-sealed forwarded one (DKIM + ARC-Message-Signature + ARC-Seal: three
 * RSA verifies). Calls run one after another (one core); the first round warms
 * the cache and is not counted.
 */
import { AUTH_DEFAULTS, runAuthenticate } from '../lib/checks/auth';
import { DnsResolver } from '../lib/dns/resolver';
import { createContext } from '../lib/message';
import { forwardFromExample, IP, message, sign, startAuthWorld } from '../test/fixtures/auth/world';

export interface AuthBenchResult {
  /** authenticate() calls per second, DKIM-signed message, warm cache. */
  signedPerSecond: number;
  /** Same for an ARC-sealed forwarded message. */
  arcPerSecond: number;
  calls: number;
  /** DNS queries that reached the server during the measured calls (0 = cache warm). */
  dnsQueriesDuringRun: number;
}

async function rate(calls: number, one: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await one();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return Math.round(calls / seconds);
}

export async function benchAuth(options: { calls?: number } = {}): Promise<AuthBenchResult> {
  const calls = options.calls ?? 1000;
  const world = await startAuthWorld();
  try {
    const dns = new DnsResolver({ servers: [world.dns.server], timeoutMs: 1000, cacheSize: 10_000, maxTtl: 3600, negativeTtl: 300 });
    const signed = await sign(message(), 'example.com', 's1', world.keys.example);
    const forwarded = await forwardFromExample(world, signed);
    const settings = { ...AUTH_DEFAULTS, trustedSealers: ['fwd.test'] };
    const signedCtx = () => createContext({ ip: IP.example, helo: 'mail.example.com', mailFrom: 'alice@example.com', raw: signed, localHostname: 'mx.bench.test' });
    const arcCtx = () => createContext({ ip: IP.forwarder, helo: 'mx.fwd.test', mailFrom: 'list-bounces@fwd.test', raw: forwarded, localHostname: 'mx.bench.test' });

    const check = async (make: () => ReturnType<typeof createContext>, expect: string) => {
      const { auth } = await runAuthenticate(make(), settings, dns);
      const got = `${auth.spf.result}/${auth.dmarc.result}/${auth.arc.result}`;
      if (got !== expect) throw new Error(`bench message authenticated as ${got}, expected ${expect}`);
    };
    // Warm the cache (and prove the messages authenticate as intended).
    await check(signedCtx, 'pass/pass/none');
    await check(arcCtx, 'pass/fail/pass');

    const queriesBefore = world.dns.queries.length;
    const signedPerSecond = await rate(calls, () => runAuthenticate(signedCtx(), settings, dns));
    const arcPerSecond = await rate(Math.max(1, Math.floor(calls / 2)), () => runAuthenticate(arcCtx(), settings, dns));
    return { signedPerSecond, arcPerSecond, calls, dnsQueriesDuringRun: world.dns.queries.length - queriesBefore };
  } finally {
    await world.stop();
  }
}

export function formatAuthBench(r: AuthBenchResult): string[] {
  return [
    `auth: ${r.signedPerSecond} authenticate() calls/s (DKIM-signed, warm DNS cache), ${r.arcPerSecond}/s (ARC-sealed forward); ${r.dnsQueriesDuringRun} DNS queries during the run`,
  ];
}

if (require.main === module) {
  benchAuth({ calls: Number(process.argv[2] ?? 1000) }).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
