import { domainToASCII } from 'node:url';

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
