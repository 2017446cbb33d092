/**
 * How often HTML hidden text is found in the SpamAssassin corpus, ham and spam apart: messages
 * HTML_HIDDEN_TEXT fires on (the content heuristics' thresholds), messages with any hidden text,
 * and, for the MIME tail's padding judgement, the least visible share over cut points of the ham
 * HTML bodies of 5 KB or more (lib/mime/padding.ts: under 0.5% is padding), with at least 2 KB after the cut.
 *
 *   npx tsc -p . && node dist/bench/hidden-text.js [--list]
 *
 * --list prints each ham message HTML_HIDDEN_TEXT fires on, with its hidden text's start.
 */
import { loadCorpus } from './corpus';
import { builtinHeuristics } from '../lib/checks/content/heuristics';
import { messageParts } from '../lib/checks/content/parts';
import { DEFAULT_CONTENT_SETTINGS } from '../lib/checks/content/settings';
import { createContext } from '../lib/message';
import { decodeParts } from '../lib/mime/decode';
import { htmlVisibleShare, unshownOpenAt } from '../lib/mime/padding';

/** Cut points per HTML body, evenly spread. */
const CUTS = 30;
const MIN_BODY = 5 * 1024;
/** Cuts with less than this left after them are counted apart: a few hundred bytes of closing markup show little. */
const MIN_TAIL = 2 * 1024;
/** PADDING_VISIBLE_SHARE of lib/mime/padding.ts. */
const PADDING_SHARE = 0.005;

async function main(): Promise<void> {
  const list = process.argv.includes('--list');
  const counts = { ham: { messages: 0, html: 0, anyHidden: 0, fired: 0 }, spam: { messages: 0, html: 0, anyHidden: 0, fired: 0 } };
  let cuts = 0;
  let bodies = 0;
  let least = { share: Infinity, id: '' };
  // Cuts that read as padding; a cut with little left after it (a signature's markup) is counted apart.
  let padding = 0;
  let shortTails = 0;
  for (const doc of loadCorpus()) {
    const c = counts[doc.label];
    c.messages++;
    const raw = Buffer.from(doc.raw, 'latin1');
    const parts = await messageParts(createContext({ ip: '192.0.2.1', raw }));
    if (!parts.html) continue;
    c.html++;
    if (parts.html.hiddenText) c.anyHidden++;
    const fired = builtinHeuristics(parts, DEFAULT_CONTENT_SETTINGS.heuristics).find((h) => h.name === 'HTML_HIDDEN_TEXT');
    if (fired) {
      c.fired++;
      if (list && doc.label === 'ham') console.log(`${doc.group}/${doc.id}: ${fired.detail}: ${parts.html.hiddenText.slice(0, 160)}`);
    }
    if (doc.label !== 'ham') continue;
    const html = (await decodeParts(raw)).html;
    if (!html || html.length < MIN_BODY) continue;
    bodies++;
    for (let i = 1; i <= CUTS; i++) {
      const at = Math.floor((html.length * i) / (CUTS + 1));
      const share = htmlVisibleShare(unshownOpenAt(html.slice(0, at)) + html.slice(at));
      if (html.length - at < MIN_TAIL) {
        if (share < PADDING_SHARE) shortTails++;
        continue;
      }
      cuts++;
      if (share < PADDING_SHARE) padding++;
      if (share < least.share) least = { share, id: `${doc.group}/${doc.id}@${at}` };
    }
  }
  console.log(JSON.stringify({ counts, padding: { bodies, cuts, padding, leastVisibleShare: least, shortTailsUnderLimit: shortTails } }, null, 1));
}

void main();
