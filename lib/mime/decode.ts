/** postal-mime's decoding of a message, with HTML parts without a charset re-read in the charset their <meta> declares. */
import { TextDecoder } from 'node:util';
import PostalMime from 'postal-mime';
import type { Email } from 'postal-mime';
import { MAX_HEADER_BYTES } from './header-block';

export async function decodeParts(raw: Buffer): Promise<Email> {
  const parser = new PostalMime({ maxNestingDepth: 50, maxHeadersSize: MAX_HEADER_BYTES });
  const email = await parser.parse(raw);
  // The part tree is postal-mime's own (not in its types): where it is not, the HTML stays as it decoded it.
  redecodeByMeta(email, (parser as unknown as { root?: PartNode }).root);
  return email;
}

/** What redecodeByMeta reads of a postal-mime part (MimeNode): its type and parameters, disposition, transfer-decoded bytes. */
interface PartNode {
  contentType?: { parsed?: { value?: string; params?: Record<string, string> } };
  contentDisposition?: { parsed?: { value?: string } };
  content?: ArrayBuffer | null;
  childNodes?: PartNode[];
}

/** Bytes of an HTML part that browsers search for a <meta> charset (the HTML standard's prescan). */
const META_PRESCAN_BYTES = 1024;
/** A `<meta ...>` tag: what stands between `<meta` and its `>` (quoted values may hold `>`). */
const META_TAG = /<meta[\s/]((?:"[^"]*"|'[^']*'|[^'">])*)>?/gi;
/** One attribute of a tag: name, and its value double-quoted, single-quoted or bare. */
const TAG_ATTRIBUTE = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
/** The charset in a Content-Type value (`text/html; charset=koi8-r`). */
const CONTENT_CHARSET = /charset\s*=\s*["']?\s*([\w.:-]{1,40})/i;

/** The charset one `<meta>` tag declares: its `charset` attribute, or `content` when `http-equiv` is Content-Type. */
function metaTagCharset(attributes: string): string | undefined {
  const attrs = new Map<string, string>();
  for (const m of attributes.matchAll(TAG_ATTRIBUTE)) {
    const name = m[1]!.toLowerCase();
    if (!attrs.has(name)) attrs.set(name, m[2] ?? m[3] ?? m[4] ?? '');
  }
  const charset = attrs.get('charset')?.trim();
  if (charset) return charset;
  if (attrs.get('http-equiv')?.trim().toLowerCase() !== 'content-type') return undefined;
  return CONTENT_CHARSET.exec(attrs.get('content') ?? '')?.[1];
}

/**
 * The decoder that an HTML part's `<meta>` charset names, or undefined: a
 * byte order mark (it wins over any `<meta>`, as in the HTML standard), no
 * meta tag in the first 1024 bytes (outside comments) with a `charset`
 * attribute or an `http-equiv="Content-Type"` `content` naming one (a
 * keywords meta or a `data-charset` attribute is no declaration), a label
 * TextDecoder does not know, or a UTF (UTF-8 is what postal-mime read it as;
 * the HTML standard reads a UTF-16 label found by the prescan as UTF-8).
 */
function metaDecoder(content: ArrayBuffer): TextDecoder | undefined {
  const bytes = Buffer.from(content, 0, Math.min(content.byteLength, META_PRESCAN_BYTES));
  const bom = (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) || (bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes[0] === 0xff && bytes[1] === 0xfe);
  if (bom) return undefined;
  const head = bytes.toString('latin1').replace(/<!--[\s\S]*?(?:-->|$)/g, '');
  let label: string | undefined;
  for (const tag of head.matchAll(META_TAG)) if ((label = metaTagCharset(tag[1]!))) break;
  if (!label) return undefined;
  try {
    const decoder = new TextDecoder(label);
    return decoder.encoding.startsWith('utf-') ? undefined : decoder;
  } catch {
    return undefined;
  }
}

/**
 * An inline text/html part with no charset parameter is read in the charset
 * its `<meta>` declares, as browsers and mail clients do; postal-mime reads
 * it as UTF-8, which turns koi8-r or windows-1251 into U+FFFD, so it is
 * decoded again from its bytes. A charset parameter wins, as in mail clients.
 * Parts are met in tree order, the order postal-mime joins them in
 * (`email.html`), so each is looked for after the last one replaced: time
 * linear in the message. A part not found as it is (format=flowed) is skipped;
 * after MAX_META_MISSES of those the rest are left as postal-mime read them.
 */
function redecodeByMeta(email: Email, root: PartNode | undefined): void {
  const html = email.html;
  if (!html || !root) return;
  // Pieces joined once: replacing in the string part by part would copy it per part.
  const pieces: string[] = [];
  let from = 0;
  let misses = 0;
  const stack = [root];
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (Array.isArray(node.childNodes)) for (let i = node.childNodes.length - 1; i >= 0; i--) stack.push(node.childNodes[i]!);
    const type = node.contentType?.parsed;
    if (type?.value !== 'text/html' || type.params?.charset || node.contentDisposition?.parsed?.value === 'attachment') continue;
    if (!(node.content instanceof ArrayBuffer)) continue;
    const decoder = metaDecoder(node.content);
    if (!decoder) continue;
    const read = utf8.decode(node.content);
    const at = html.indexOf(read, from);
    // Not as postal-mime joined it (format=flowed, nested alternatives): that part is left as it is and the
    // later ones still looked for; after MAX_META_MISSES misses, no more (each searches the rest again).
    if (at < 0) {
      if (++misses >= MAX_META_MISSES) break;
      continue;
    }
    pieces.push(html.slice(from, at), decoder.decode(node.content));
    from = at + read.length;
  }
  if (pieces.length) email.html = pieces.join('') + html.slice(from);
}

/** HTML parts redecodeByMeta fails to find in the joined HTML before it stops looking: each miss searches the rest. */
const MAX_META_MISSES = 20;

/** What postal-mime decodes a part with no charset with. */
const utf8 = new TextDecoder();
