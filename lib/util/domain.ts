import { domainToASCII } from 'node:url';

/** `name` and each domain above it (mail.example.com, example.com, com): what it is within. */
export function domainAndParents(name: string): string[] {
  const out = [name];
  for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) out.push(name.slice(dot + 1));
  return out;
}

/**
 * A domain in one form: trimmed, lower case, no trailing dot, internationalised labels
 * in their ASCII (punycode) form after IDNA mapping, so `bücher.de`,
 * `xn--bcher-kva.de`, `BÜCHER.DE.` and fullwidth `ｂüｃｈｅｒ.de` are one
 * domain. A label that is a glob (`*`, `?`) is left as it is.
 */
export function asciiDomain(domain: string): string {
  return domain
    .trim()
    .normalize('NFKC')
    .toLowerCase()
    .replace(/\.$/, '')
    .split('.')
    .map((label) => (/[^\x00-\x7f]/.test(label) && !/[*?]/.test(label) ? domainToASCII(label) || label : label))
    .join('.');
}
