import { createHmac, timingSafeEqual } from 'node:crypto';

/** One signing secret; the first configured key signs, every key verifies (rotation). */
export interface SigningKey {
  id: string;
  secret: string;
}

/** The headers of an outbound message that its signature covers. */
export interface SignedFields {
  messageId: string;
  date: string;
  /** Address in the From header (a bounce quotes headers, not the envelope). */
  from: string;
}

export type VerifyResult =
  | { ok: true; keyId: string; signedAt: number }
  | { ok: false; reason: 'malformed' | 'unknown_key' | 'bad_signature' | 'expired' | 'future'; keyId?: string; signedAt?: number };

const VERSION = '1';

/** `<ABC@Example.COM>` and ` abc@example.com ` identify the same message. */
export function normaliseMessageId(value: string | undefined | null): string {
  if (!value) return '';
  const m = /<([^<>]*)>/.exec(value);
  return (m ? m[1]! : value).trim().toLowerCase();
}

/** The addr-spec of a From header value ("Alice <Alice@Example.com>" -> "alice@example.com"). */
export function addressOf(value: string | undefined | null): string {
  if (!value) return '';
  const angle = /<([^<>]*)>/.exec(value);
  if (angle) return angle[1]!.trim().toLowerCase();
  const bare = /[^\s<>"'(),;:]+@[^\s<>"'(),;:]+/.exec(value);
  return (bare ? bare[0] : value.trim()).toLowerCase();
}

function canonical(keyId: string, t: number, f: SignedFields): string {
  // Folding and whitespace may change when a bounce quotes the headers.
  const date = f.date.replace(/\s+/g, ' ').trim();
  return `v=${VERSION}\nk=${keyId}\nt=${t}\nmid=${normaliseMessageId(f.messageId)}\ndate=${date}\nfrom=${addressOf(f.from)}`;
}

function mac(secret: string, text: string): Buffer {
  return createHmac('sha256', secret).update(text, 'utf8').digest();
}

/** The header value: `v=1; k=<key id>; t=<unix seconds>; s=<base64url HMAC-SHA256>`. */
export function sign(key: SigningKey, fields: SignedFields, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  const s = mac(key.secret, canonical(key.id, t, fields)).toString('base64url');
  return `v=${VERSION}; k=${key.id}; t=${t}; s=${s}`;
}

export function parseSignature(value: string): { v: string; k: string; t: number; s: string } | null {
  const tags: Record<string, string> = {};
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    tags[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).replace(/\s+/g, '');
  }
  const t = Number(tags.t);
  if (tags.v !== VERSION || !tags.k || !tags.s || !Number.isInteger(t)) return null;
  return { v: tags.v, k: tags.k, t, s: tags.s };
}

export interface VerifyOptions {
  maxAgeSeconds: number;
  /** Tolerated clock difference between nodes for a signature "from the future". */
  maxFutureSeconds: number;
}

/** Checks a signature header found in a bounced original against every configured key. */
export function verify(value: string, fields: SignedFields, keys: SigningKey[], nowMs: number, options: VerifyOptions): VerifyResult {
  const parsed = parseSignature(value);
  if (!parsed) return { ok: false, reason: 'malformed' };
  const key = keys.find((k) => k.id === parsed.k);
  if (!key) return { ok: false, reason: 'unknown_key', keyId: parsed.k, signedAt: parsed.t };
  const expected = mac(key.secret, canonical(key.id, parsed.t, fields));
  const given = Buffer.from(parsed.s, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: 'bad_signature', keyId: key.id, signedAt: parsed.t };
  }
  const now = Math.floor(nowMs / 1000);
  if (parsed.t > now + options.maxFutureSeconds) return { ok: false, reason: 'future', keyId: key.id, signedAt: parsed.t };
  if (now - parsed.t > options.maxAgeSeconds) return { ok: false, reason: 'expired', keyId: key.id, signedAt: parsed.t };
  return { ok: true, keyId: key.id, signedAt: parsed.t };
}
