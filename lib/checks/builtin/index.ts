import { parsedMessage, rawBody } from '../../message';
import type { SymbolDef } from '../../score/types';
import type { Check, CheckModule } from '../types';

/**
 * The GTUBE test string (SpamAssassin's Generic Test for Unsolicited Bulk
 * Email). A message carrying it scores far past any reject threshold, so an
 * operator can test the reject path end to end without real spam.
 */
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

export const builtinSymbols: SymbolDef[] = [
  { name: 'GTUBE', score: 1000, group: 'policy', description: 'Body carries the GTUBE anti-spam test string (forces the reject path)' },
  { name: 'MIME_PARSE_ERROR', score: 0, group: 'policy', description: 'The message could not be fully parsed as MIME; checks ran on what could be read' },
  { name: 'MIME_PARTIAL', score: 0, group: 'policy', description: 'Only the start of a large message was MIME-decoded (2 MB or 28,000 lines); checks on the raw message read all of it' },
  { name: 'MIME_TEXT_UNREAD', score: 2, group: 'policy', description: 'Text parts of a large message past the decoded start were left unread (too many, or behind padding): content checks did not see them' },
  { name: 'CHECK_ERROR', score: 0, group: 'policy', description: 'A check failed internally; it added nothing else and mail was not refused because of it' },
];

const gtube: Check = {
  name: 'builtin.gtube',
  phase: 'data',
  async run(ctx) {
    if (rawBody(ctx).includes(GTUBE)) return [{ name: 'GTUBE', detail: 'GTUBE test string in body' }];
    const parsed = await parsedMessage(ctx);
    if (parsed && `${parsed.text ?? ''}${parsed.html ?? ''}`.includes(GTUBE)) return [{ name: 'GTUBE', detail: 'GTUBE test string in decoded body' }];
    return [];
  },
};

const parseResult: Check = {
  name: 'builtin.parse',
  phase: 'data',
  async run(ctx) {
    await parsedMessage(ctx);
    const hits = ctx.parse.ok ? [] : [{ name: 'MIME_PARSE_ERROR', detail: ctx.parse.error }];
    if (ctx.parse.partial) hits.push({ name: 'MIME_PARTIAL', detail: ctx.parse.partial });
    if (ctx.parse.unread) hits.push({ name: 'MIME_TEXT_UNREAD', detail: ctx.parse.unread });
    return hits;
  },
};

export const builtinModule: CheckModule<null> = {
  name: 'builtin',
  file: null,
  symbols: builtinSymbols,
  parseSettings() {
    return { settings: null };
  },
  createChecks() {
    return [gtube, parseResult];
  },
};
