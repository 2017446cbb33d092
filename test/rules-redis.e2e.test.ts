// Run-time allow and block lists in Redis, end to end: two real Haraka nodes
// with mailward/auth and mailward/rules share the lists through Redis
// (127.0.0.1:6379, a key prefix of their own, `[state] backend = redis`), SPF
// comes from the test DNS server, and the entries are added and removed with
// the CLI from a third config directory (an operator's machine) with the same
// [state] settings. The lists are read on every message (no cache): a change
// applies to the next message on every node.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { main } from '../lib/cli/main';
import type { CliIO } from '../lib/cli/types';
import { startDnsServer, type TestDnsServer } from './support/dns-server';
import { freePort, type HarakaInstance, readDelivered, removeDir, sendMail, simpleMessage, startHaraka } from './support/haraka';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from './support/redis';
import { waitFor } from './support/wait';

/** partner.test's own server (in its SPF record); anyone else forging partner.test. */
const PARTNER_IP = '127.0.0.10';
const FORGER_IP = '127.0.0.77';

const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const PARTNER = 'news@partner.test';
const SPAMMER = 'promo@bulk.test';

/** The same [state] settings for both nodes and the operator's CLI. */
const MAILWARD_INI = (dns: string, prefix: string) =>
  `[main]\ndata_dir = data\n\n[dns]\nservers = ${dns}\ntimeout_ms = 400\n\n` +
  // 8 up to 30 is held: a message marked [spammy] (+12) is held unless an allow entry holds.
  `[actions]\nquarantine = 8\nsoft_reject = 30\nreject = 40\n\n` +
  `[state]\nbackend = redis\nredis_url = ${REDIS_URL}\nprefix = ${prefix}\n`;

// A score-only rule: it does not decide, so the lists are consulted after it.
const RULES = `
rule spammy
  header Subject contains [spammy]
  action score +12
`;

function capture(): CliIO & { text(): string } {
  const lines: string[] = [];
  return { out: (l) => lines.push(l), err: (l) => lines.push(l), text: () => lines.join('\n') };
}

let sequence = 0;

describe('rules end to end: run-time allow/block lists in Redis shared by two Haraka nodes', function () {
  this.timeout(120_000);
  const prefix = uniqueRedisPrefix('rules-e2e');
  let dns: TestDnsServer;
  let a: HarakaInstance;
  let b: HarakaInstance;
  /** The operator's machine: config/ (for --config) and data/ beside it, as on an MTA. */
  let adminDir: string;
  let adminConfig: string;
  let redis: ReturnType<typeof createClient>;

  before(async () => {
    dns = await startDnsServer({
      'partner.test': { TXT: [`v=spf1 ip4:${PARTNER_IP} -all`] },
      // p=none: a forged partner.test is not refused by DMARC itself, so only the lists and the score decide.
      '_dmarc.partner.test': { TXT: ['v=DMARC1; p=none'] },
    });
    const files = {
      'mailward.ini': MAILWARD_INI(dns.server, prefix),
      'mailward.rules': RULES,
    };
    const plugins = ['mailward/plugins/auth', 'mailward/plugins/antispoof', 'mailward/plugins/rules'];
    [a, b] = await Promise.all([
      startHaraka({ plugins, files, hostList: ['example.com'] }),
      startHaraka({ plugins, files, hostList: ['example.com'] }),
    ]);
    adminDir = mkdtempSync(join(tmpdir(), 'mailward-rules-admin-'));
    adminConfig = join(adminDir, 'config');
    mkdirSync(adminConfig);
    writeFileSync(join(adminConfig, 'mailward.ini'), MAILWARD_INI(dns.server, prefix));
    redis = createClient({ url: REDIS_URL });
    await redis.connect();
  });
  after(async () => {
    await redis?.quit();
    await Promise.all([a?.stop(), b?.stop()]);
    await dns?.stop();
    for (const h of [a, b]) if (h) removeDir(h.dir);
    if (adminDir) removeDir(adminDir);
    await deleteRedisKeys(prefix);
  });

  async function cli(...argv: string[]) {
    const io = capture();
    const code = await main([...argv, '--config', adminConfig], io);
    return { code, text: io.text() };
  }

  /** Sends a message with a subject of its own; returns the reply and the delivered copy's X-Mailward-Status, if delivered. */
  async function send(node: HarakaInstance, o: { from: string; to: string[]; ip: string; spammy?: boolean }) {
    const subject = `rules-redis-${process.pid}-${++sequence}${o.spammy ? ' [spammy]' : ''}`;
    const raw = simpleMessage({ from: o.from, to: o.to.join(', '), subject });
    const result = await sendMail({ port: node.port, from: o.from, to: o.to, raw, localAddress: o.ip, helo: 'mail.sender.test' });
    const copies = node.delivered().filter((f) => readDelivered(f).includes(`Subject: ${subject}\r\n`));
    const status = copies.length ? (/^X-Mailward-Status: (.*)$/m.exec(readDelivered(copies[0]!))?.[1] ?? '') : undefined;
    const ref = /ref ([0-9A-Z]{10})/.exec(result.response)?.[1] ?? (status ? /\bref=([0-9A-Z]{10})/.exec(status)?.[1] : undefined);
    return { ...result, copies: copies.length, status, ref };
  }

  /**
   * `SYMBOL detail` lines of one transaction, as `mailward explain REF` reads
   * them from that node's tracking (written in batches: waited for).
   */
  async function explain(node: HarakaInstance, ref: string | undefined): Promise<string> {
    assert.ok(ref, 'no ref in the reply or the delivered copy');
    const row = await waitFor(`ref ${ref} in the tracking of ${node.port}`, async () => {
      const io = capture();
      const code = await main(['explain', ref, '--json', '--config', node.configDir], io);
      return code === 0 ? (JSON.parse(io.text()) as { symbols: { name: string; detail?: string }[] }) : undefined;
    }, 10_000, 100);
    return row.symbols.map((s) => `${s.name} ${s.detail ?? ''}`).join('\n');
  }

  const nodes = () => [
    ['A', a],
    ['B', b],
  ] as const;

  it('the CLI writes the entries into the shared Redis under the prefix (not into a SQLite file or a fallback)', async () => {
    const add = await cli('block', 'add', '--rcpt', ALICE, 'bulk-probe.test');
    assert.equal(add.code, 0, add.text);
    assert.deepEqual(await redis.sMembers(`${prefix}senders:block:user:${ALICE}`), ['bulk-probe.test']);
    const list = await cli('block', 'list', '--rcpt', ALICE);
    assert.match(list.text, new RegExp(`^${ALICE.replace('.', '\\.')} +run-time +bulk-probe\\.test$`, 'm'));
    const remove = await cli('block', 'remove', '--rcpt', ALICE, 'bulk-probe.test');
    assert.equal(remove.code, 0, remove.text);
    assert.deepEqual(await redis.sMembers(`${prefix}senders:block:user:${ALICE}`), []);
    for (const dir of [join(adminDir, 'data'), a.dataDir, b.dataDir]) assert.equal(existsSync(join(dir, 'senders.sqlite')), false, `${dir}/senders.sqlite`);
  });

  it('an unreachable Redis is an error for the CLI, not an entry written nowhere', async () => {
    // Nothing listens on a port freePort() just released.
    const down = mkdtempSync(join(tmpdir(), 'mailward-rules-down-'));
    try {
      mkdirSync(join(down, 'config'));
      writeFileSync(join(down, 'config', 'mailward.ini'), MAILWARD_INI(dns.server, prefix).replace(REDIS_URL, `redis://127.0.0.1:${await freePort()}`));
      for (const argv of [['block', 'add', '--rcpt', ALICE, SPAMMER], ['allow', 'list']]) {
        const io = capture();
        const code = await main([...argv, '--config', join(down, 'config')], io);
        assert.equal(code, 1, `${argv.join(' ')}: ${io.text()}`);
        assert.match(io.text(), /^mailward (block|allow): cannot reach the shared state: .*Redis at redis:\/\/127\.0\.0\.1:\d+ unavailable/, argv.join(' '));
        // It does not go on about the MTA's in-process fallback: the command wrote nothing.
        assert.doesNotMatch(io.text(), /using in-process state/, argv.join(' '));
        assert.doesNotMatch(io.text(), /^(block|allow) /m, argv.join(' '));
      }
    } finally {
      removeDir(down);
    }
  });

  it("a recipient's block entry refuses that sender's mail to that recipient on both nodes, not to another; removing it takes effect on both", async () => {
    // Before: accepted everywhere.
    for (const [name, node] of nodes()) {
      const r = await send(node, { from: SPAMMER, to: [ALICE], ip: FORGER_IP });
      assert.equal(r.code, 250, `node ${name}: ${r.response}`);
      assert.equal(r.copies, 1, `node ${name}`);
    }

    const add = await cli('block', 'add', '--rcpt', ALICE, SPAMMER);
    assert.equal(add.code, 0, add.text);
    assert.match(add.text, new RegExp(`^block ${SPAMMER} for ${ALICE}$`, 'm'));

    for (const [name, node] of nodes()) {
      const toAlice = await send(node, { from: SPAMMER, to: [ALICE], ip: FORGER_IP });
      assert.equal(toAlice.code, 550, `node ${name}: ${toAlice.response}`);
      assert.equal(toAlice.copies, 0, `node ${name}`);
      assert.match(toAlice.response, new RegExp(`block list \\(${ALICE}: ${SPAMMER}\\)`), `node ${name}`);

      const toBob = await send(node, { from: SPAMMER, to: [BOB], ip: FORGER_IP });
      assert.equal(toBob.code, 250, `node ${name}: ${toBob.response}`);
      assert.equal(toBob.copies, 1, `node ${name}`);
      assert.doesNotMatch(toBob.status!, /BLOCKLIST/, `node ${name}: ${toBob.status}`);

      // Both on one message: not refused for Bob's sake; BLOCKLIST records who blocked it.
      const both = await send(node, { from: SPAMMER, to: [ALICE, BOB], ip: FORGER_IP });
      assert.equal(both.code, 250, `node ${name}: ${both.response}`);
      assert.equal(both.copies, 1, `node ${name}`);
      assert.match(both.status!, /\bBLOCKLIST 0\b/, `node ${name}: ${both.status}`);
      assert.match(await explain(node, both.ref), new RegExp(`^BLOCKLIST blocked by ${ALICE} only \\(block list \\(${ALICE}: ${SPAMMER}\\)\\); not refused for the other recipients$`, 'm'), `node ${name}`);
    }

    const remove = await cli('block', 'remove', '--rcpt', ALICE, SPAMMER);
    assert.equal(remove.code, 0, remove.text);
    for (const [name, node] of nodes()) {
      const again = await waitFor(`node ${name} to accept ${SPAMMER} -> ${ALICE} again`, async () => {
        const r = await send(node, { from: SPAMMER, to: [ALICE], ip: FORGER_IP });
        return r.code === 250 ? r : undefined;
      }, 10_000, 200);
      assert.equal(again.copies, 1, `node ${name}`);
      assert.doesNotMatch(again.status!, /BLOCKLIST/, `node ${name}: ${again.status}`);
    }
  });

  it("a recipient's allow entry rescues authenticated mail on both nodes, never a forgery, and not for another recipient; removing it takes effect on both", async () => {
    // Before: [spammy] mail is held, authenticated or not.
    for (const [name, node] of nodes()) {
      const r = await send(node, { from: PARTNER, to: [ALICE], ip: PARTNER_IP, spammy: true });
      assert.equal(r.copies, 0, `node ${name}: ${r.response}`);
      assert.match(r.response, /held for review/, `node ${name}`);
    }

    const add = await cli('allow', 'add', '--rcpt', ALICE, PARTNER);
    assert.equal(add.code, 0, add.text);
    assert.match(add.text, new RegExp(`^allow ${PARTNER} for ${ALICE}$`, 'm'));
    assert.doesNotMatch(add.text, /warning/, 'an authenticated entry is not warned about');

    for (const [name, node] of nodes()) {
      // From partner.test's own server: SPF pass, aligned with the From: domain.
      const real = await send(node, { from: PARTNER, to: [ALICE], ip: PARTNER_IP, spammy: true });
      assert.equal(real.code, 250, `node ${name}: ${real.response}`);
      assert.equal(real.copies, 1, `node ${name}: ${real.response}`);
      assert.match(real.status!, /^accept /, `node ${name}: ${real.status}`);
      assert.match(real.status!, /\bALLOWLIST 0\b/, `node ${name}: ${real.status}`);
      assert.match(await explain(node, real.ref), new RegExp(`^ALLOWLIST ${PARTNER}: allow list \\(${ALICE}: ${PARTNER}, spf=pass aligned`, 'm'), `node ${name}`);

      // The same From: from a server partner.test does not authorise: SPF fails, the entry does not hold.
      const forged = await send(node, { from: PARTNER, to: [ALICE], ip: FORGER_IP, spammy: true });
      assert.equal(forged.copies, 0, `node ${name}: a forged allowed sender is delivered: ${forged.response}`);
      assert.match(forged.response, /held for review/, `node ${name}`);
      const symbols = await explain(node, forged.ref);
      assert.match(symbols, new RegExp(`^ALLOWLIST_NOT_HELD ${ALICE}: ${PARTNER} does not hold: From: partner\\.test is not authenticated \\(spf=fail`, 'm'), `node ${name}: ${symbols}`);
      assert.doesNotMatch(symbols, /^ALLOWLIST /m, `node ${name}`);

      // Alice's entry is hers alone: authenticated mail for Bob, or for both, stays held.
      const toBob = await send(node, { from: PARTNER, to: [BOB], ip: PARTNER_IP, spammy: true });
      assert.equal(toBob.copies, 0, `node ${name}: ${toBob.response}`);
      assert.match(toBob.response, /held for review/, `node ${name}`);
      const both = await send(node, { from: PARTNER, to: [ALICE, BOB], ip: PARTNER_IP, spammy: true });
      assert.equal(both.copies, 0, `node ${name}: ${both.response}`);
      assert.match(await explain(node, both.ref), new RegExp(`^ALLOWLIST_NOT_HELD ${PARTNER} is allowed for ${ALICE} but not for ${BOB}$`, 'm'), `node ${name}`);
    }

    const remove = await cli('allow', 'remove', '--rcpt', ALICE, PARTNER);
    assert.equal(remove.code, 0, remove.text);
    for (const [name, node] of nodes()) {
      const again = await waitFor(`node ${name} to hold authenticated ${PARTNER} -> ${ALICE} again`, async () => {
        const r = await send(node, { from: PARTNER, to: [ALICE], ip: PARTNER_IP, spammy: true });
        return r.copies === 0 ? r : undefined;
      }, 10_000, 200);
      assert.match(again.response, /held for review/, `node ${name}`);
    }
  });

  it('only an explicit unauthenticated entry lets the forgery through (warned about), on both nodes, until removed', async () => {
    const add = await cli('allow', 'add', '--rcpt', ALICE, '--unauthenticated', PARTNER);
    assert.equal(add.code, 0, add.text);
    assert.match(add.text, new RegExp(`^warning: ${ALICE}: allow entry unauthenticated:${PARTNER} is unauthenticated: anyone can forge`, 'm'));
    for (const [name, node] of nodes()) {
      const forged = await send(node, { from: PARTNER, to: [ALICE], ip: FORGER_IP, spammy: true });
      assert.equal(forged.copies, 1, `node ${name}: ${forged.response}`);
      assert.match(forged.status!, /^accept .*\bALLOWLIST 0\b/, `node ${name}: ${forged.status}`);
      assert.match(await explain(node, forged.ref), new RegExp(`^ALLOWLIST ${PARTNER}: allow list \\(${ALICE}: unauthenticated:${PARTNER}, unauthenticated entry\\)$`, 'm'), `node ${name}`);
    }
    // Removed by the bare sender, as documented.
    const remove = await cli('allow', 'remove', '--rcpt', ALICE, PARTNER);
    assert.equal(remove.code, 0, remove.text);
    assert.match(remove.text, new RegExp(`removed unauthenticated:${PARTNER} from the allowed senders of ${ALICE}`));
    for (const [name, node] of nodes()) {
      const again = await waitFor(`node ${name} to hold the forgery again`, async () => {
        const r = await send(node, { from: PARTNER, to: [ALICE], ip: FORGER_IP, spammy: true });
        return r.copies === 0 ? r : undefined;
      }, 10_000, 200);
      assert.match(again.response, /held for review/, `node ${name}`);
    }
  });
});
