/**
 * Hostile inputs that were once quadratic (or worse) in a parser on the mail
 * path, each timed against the same function on an ordinary input of about the
 * same size, in the same run. The tests (message, content, content-heuristics,
 * quarantine) check what these functions return on the hostile inputs and keep
 * only a generous hang guard; how long they take is watched here.
 *
 * Linear code keeps each ratio near 1 (a few at most: the hostile input takes
 * another branch). The old code was 100 to 1,000 times slower than the
 * ordinary input at these sizes (e.g. 150,000 dots in a word: 20 s).
 */
import { randomBytes } from 'node:crypto';
import { templateWords } from '../lib/checks/content/fingerprint';
import { DEFAULT_TOKENIZER_OPTIONS, normaliseWord } from '../lib/checks/content/tokenize';
import { fieldsPastIndex, parseHeaderBlock, withoutHeaders } from '../lib/message';
import { signRelease, verifyRelease } from '../lib/quarantine/release-token';
import { analyseHtml } from '../lib/util/html';

export interface HostileCase {
  name: string;
  /** Best of the runs, ms. */
  hostileMs: number;
  ordinaryMs: number;
}

export interface HostileBenchResult {
  cases: HostileCase[];
}

interface Pair {
  name: string;
  hostile: () => unknown;
  ordinary: () => unknown;
}

const CRLF = '\r\n';

/** `scale` 1 is the size of the tests' inputs; smaller to try the benchmark quickly. */
function pairs(scale: number): Pair[] {
  const n = (count: number) => Math.max(10, Math.round(count * scale));
  const folds = n(200_000);
  const folded = Buffer.from(['X-Fold: a', ...Array<string>(folds).fill(' b'), 'To: x@y.test', '', ''].join(CRLF));
  const fields = Buffer.from([...Array.from({ length: folds }, (_, i) => `X${i % 10}: b`), 'To: x@y.test', '', ''].join(CRLF));
  const blanks = n(150_000);
  const paddedName = Buffer.from(`Subject: x${CRLF}X${' '.repeat(blanks)}b: v${CRLF}To: x@y.test${CRLF}${CRLF}body`);
  const paddedValue = Buffer.from(`Subject: x${CRLF}X: ${'v'.repeat(blanks)}${CRLF}To: x@y.test${CRLF}${CRLF}body`);
  const dots = n(150_000);
  const prose = 'please read this notice about your account '.repeat(Math.ceil(dots / 44)).slice(0, dots);
  const dashes = n(100_000);
  const plain = { ...DEFAULT_TOKENIZER_OPTIONS, words: 'plain' as const };
  const tags = n(50_000);
  const key = randomBytes(32);
  const envelope = { mailFrom: 'bob@partner.test', rcptTo: ['alice@example.com'] };
  const stamp = signRelease(key, 'BENCH1', envelope, Buffer.from(`Subject: a${CRLF}${CRLF}hello${CRLF}`), 1_000_000_000_000);
  const runs = n(100_000);
  // A From: past the 1 MB header index (read by antispoof): folded into blank lines, vs one long line.
  const padding = Array.from({ length: 1100 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(1000)}`).join(CRLF);
  const blankLines = n(2_000_000);
  const pastFolded = Buffer.from(`${padding}${CRLF}From: a@b.test${` ${CRLF}`.repeat(blankLines)}${CRLF}body`);
  const pastLong = Buffer.from(`${padding}${CRLF}From: a@b.test ${'x'.repeat(blankLines * 3)}${CRLF}${CRLF}body`);
  return [
    { name: 'parseHeaderBlock, one field of 200,000 folds (vs as many short fields)', hostile: () => parseHeaderBlock(folded), ordinary: () => parseHeaderBlock(fields) },
    {
      name: 'parseHeaderBlock + withoutHeaders, 150,000 blanks before a colon (vs in a value)',
      hostile: () => withoutHeaders(paddedName, ['To'], 0) && parseHeaderBlock(paddedName),
      ordinary: () => withoutHeaders(paddedValue, ['To'], 0) && parseHeaderBlock(paddedValue),
    },
    { name: 'templateWords, a word of 150,000 dots (vs prose)', hostile: () => templateWords(`please read a${'.'.repeat(dots)}a this notice`), ordinary: () => templateWords(prose) },
    { name: 'normaliseWord, a word of 100,000 dashes (vs of letters)', hostile: () => normaliseWord(`a${'-'.repeat(dashes)}a`, plain), ordinary: () => normaliseWord(`a${'b'.repeat(dashes)}a`, plain) },
    {
      name: 'analyseHtml, 50,000 unclosed <div> and 50,000 unmatched </span> (vs closed <div>)',
      hostile: () => analyseHtml(`<p>Hello</p>${'<div>'.repeat(tags)}World${'</span>'.repeat(tags)}`),
      ordinary: () => analyseHtml(`<p>Hello</p>${'<div>x</div>'.repeat(tags)}`),
    },
    {
      name: 'analyseHtml, 400 font sizes of 2,000 digits in em under a zero size (vs in px)',
      hostile: () => analyseHtml(`<div style="font-size:0">${`<span style="font-size:.${'1'.repeat(2000)}em">a</span>`.repeat(n(400))}</div>`),
      ordinary: () => analyseHtml(`<div style="font-size:0">${`<span style="font-size:.${'1'.repeat(2000)}px">a</span>`.repeat(n(400))}</div>`),
    },
    {
      // colord's number pattern tried every split of each digit run, multiplied over the numbers: 2.5 s per value before.
      name: 'analyseHtml, 200 colours rgba() of four 45-digit runs, unclosed (vs of short numbers)',
      hostile: () => analyseHtml(`<p style="color:rgba(${Array<string>(4).fill('1'.repeat(45)).join(',')},x">a</p>`.repeat(n(200))),
      ordinary: () => analyseHtml(`<p style="color:rgba(${Array<string>(4).fill('1'.repeat(2)).join(',')},${'x'.repeat(176)}">a</p>`.repeat(n(200))),
    },
    {
      // The sheets' classes are restated for the MIME tail (sheetOpen, at most 64 KB), and every opacity multiplies down the tree.
      name: 'analyseHtml, 50,000 dark classes in style sheets and 2,000 nested opacities and fills (vs one class, no style)',
      hostile: () =>
        analyseHtml(
          Array.from({ length: n(50_000) }, (_, i) => `${i % 1000 ? '' : '<style>'}.c${i}{background:#000}${i % 1000 === 999 ? '</style>' : ''}`).join('') +
            `${'<div style="opacity:0.999;-webkit-text-fill-color:#111">a'.repeat(n(2000))}`,
        ),
      ordinary: () => analyseHtml(`${`<style>${'.c{background:#000}'.repeat(1000)}</style>`.repeat(n(50))}${'<div>a'.repeat(n(2000))}`),
    },
    {
      name: 'fieldsPastIndex, a From: past 1 MB of header folded into 2,000,000 blank lines (vs one line as long)',
      hostile: () => fieldsPastIndex(pastFolded, ['from']),
      ordinary: () => fieldsPastIndex(pastLong, ['from']),
    },
    {
      name: 'verifyRelease, a forged stamp on 100,000 blanks and 100,000 line ends (vs on text)',
      hostile: () => [`x${' '.repeat(runs)}y`, `x${CRLF.repeat(runs / 2)}y`].map((body) => verifyRelease(key, stamp, envelope, Buffer.from(`Subject: a${CRLF}${CRLF}${body}${CRLF}`), 1_000_000_000_000)),
      ordinary: () => [`x${'t'.repeat(runs)}y`, `x${'t'.repeat(runs)}y`].map((body) => verifyRelease(key, stamp, envelope, Buffer.from(`Subject: a${CRLF}${CRLF}${body}${CRLF}`), 1_000_000_000_000)),
    },
  ];
}

function bestOf(runs: number, work: () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    work();
    best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
  }
  return best;
}

export async function benchHostile(options: { scale?: number; runs?: number } = {}): Promise<HostileBenchResult> {
  const runs = options.runs ?? 3;
  return { cases: pairs(options.scale ?? 1).map((p) => ({ name: p.name, ordinaryMs: bestOf(runs, p.ordinary), hostileMs: bestOf(runs, p.hostile) })) };
}

export function formatHostileBench(r: HostileBenchResult): string[] {
  return r.cases.map((c) => `hostile input: ${c.name}: ${c.hostileMs.toFixed(1)} ms; ordinary ${c.ordinaryMs.toFixed(1)} ms; ratio ${(c.hostileMs / Math.max(c.ordinaryMs, 0.01)).toFixed(1)}`);
}

if (require.main === module) {
  benchHostile({ scale: Number(process.argv[2] ?? 1) })
    .then((r) => console.log(formatHostileBench(r).join('\n')))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
