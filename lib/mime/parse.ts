/** parsedMessage: decodes the prefix up to the cut (limits.ts), then the text parts at and past it (tail.ts). */
import type { Email } from 'postal-mime';
import type { MessageContext } from '../message';
import { decodeParts } from './decode';
import { mimeCut } from './limits';
import { appendTailTextParts } from './tail';

/**
 * The decoded MIME structure (text, html, attachments, addresses). Parsed once;
 * a message that cannot be parsed yields null and records the error, so every
 * check can still run on headers and raw body. Of a message over
 * MAX_PARSE_BYTES or MAX_PARSE_LINES only the start is decoded, and
 * `ctx.parse.partial` says so.
 * An HTML part with no charset parameter is read in the charset its <meta>
 * declares (redecodeByMeta).
 */
export function parsedMessage(ctx: MessageContext): Promise<Email | null> {
  if (!ctx.raw) return Promise.resolve(null);
  ctx.parsed ??= parseMime(ctx, ctx.raw);
  return ctx.parsed;
}

function parseMime(ctx: MessageContext, raw: Buffer): Promise<Email | null> {
  const cut = mimeCut(raw);
  const input = raw.subarray(0, cut.end);
  const why = cut.by === 'lines' ? ` (${cut.lines} lines: the line limit)` : '';
  let partial = input.length < raw.length ? `decoded the first ${Math.round(input.length / 1024)} KB${why} of ${Math.round(raw.length / 1024)} KB` : undefined;
  if (partial) ctx.parse = { ...ctx.parse, partial };
  return decodeParts(input)
    .then(async (email) => {
      if (!partial) return email;
      const { found, unread } = await appendTailTextParts(email, raw, input.length);
      if (found) partial = `${partial} and ${found} text part${found === 1 ? '' : 's'} crossing or after it`;
      ctx.parse = { ...ctx.parse, partial, ...(unread ? { unread } : {}) };
      return email;
    })
    .catch((err: unknown) => {
      ctx.parse = { ok: false, error: `MIME parse failed: ${err instanceof Error ? err.message : String(err)}`, partial };
      return null;
    });
}
