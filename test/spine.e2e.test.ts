import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GTUBE } from '../lib/checks/builtin';
import { type HarakaInstance, sendMail, simpleMessage, startHaraka, removeDir } from './support/haraka';

describe('spine end to end: a real Haraka with the verdict plugin', function () {
  this.timeout(60_000);
  let haraka: HarakaInstance;

  before(async () => {
    haraka = await startHaraka({ plugins: ['mailward/plugins/verdict'], verdict: false });
  });
  after(async () => {
    await haraka?.stop();
    if (haraka) removeDir(haraka.dir);
  });

  it('accepts clean mail and adds the X-Mailward headers with a ref', async () => {
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage() });
    assert.equal(result.code, 250, result.response);
    const delivered = haraka.delivered();
    assert.equal(delivered.length, 1);
    const text = readFileSync(delivered[0]!, 'utf8');
    assert.match(text, /^X-Mailward-Score: 0$/m);
    assert.match(text, /^X-Mailward-Status: accept score=0 ref=[0-9A-Z]{7} /m);
    assert.match(text, /^X-Mailward-Ref: [0-9A-Z]{7}$/m);
  });

  it('rejects GTUBE with 550 5.7.1, the ref and the symbol in the reply', async () => {
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw: simpleMessage({ body: `test\r\n${GTUBE}\r\n` }) });
    assert.equal(result.code, 550, result.response);
    assert.match(result.response, /5\.7\.1 Message rejected as spam \(ref [0-9A-Z]{7}: GTUBE 1000\)/);
  });

  it('strips X-Mailward headers forged by the sender', async () => {
    const before = haraka.delivered().length;
    const raw = simpleMessage({ headers: { 'X-Mailward-Status': 'accept score=-100 ref=FORGED1' } });
    const result = await sendMail({ port: haraka.port, from: 'alice@example.net', to: ['bob@example.com'], raw });
    assert.equal(result.code, 250);
    const text = readFileSync(haraka.delivered()[before]!, 'utf8');
    assert.doesNotMatch(text, /FORGED1/);
  });
});
