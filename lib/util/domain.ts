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

/**
 * `name` is a DNS host name in form: labels of letters, digits, hyphens and
 * underscores (`_domainkey`), at most 63 characters each and 253 in all, in
 * ASCII once internationalised labels are converted. A DKIM d= is the
 * sender's to write: `bank.example/x.attacker.test` is a name in the
 * attacker's zone (DNS reads from the right), while the Public Suffix List
 * code reads it as a URL (from the left) and finds bank.example in it.
 */
export function isHostName(name: string): boolean {
  const ascii = asciiDomain(name);
  return ascii.length > 0 && ascii.length <= 253 && ascii.split('.').every((label) => /^[a-z0-9_-]{1,63}$/.test(label));
}
