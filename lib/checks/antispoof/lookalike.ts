import { domainToUnicode } from 'node:url';
import { LRUCache } from 'lru-cache';
import { getDomain, getPublicSuffix } from 'tldts';
import unhomoglyph from 'unhomoglyph';
import { asciiDomain, domainAndParents } from '../../util/domain';
import { detached } from '../../util/text';

/** A domain is at most 253 characters; a forged header's longer text is cut, not read whole. */
const MAX_DOMAIN = 255;

/** Vertical strokes the confusables table folds to i (the Cyrillic palochka) or leaves alone: on screen they are an l. */
const VERTICAL_STROKES = /[\u01c0\u04c0\u04cf\u05c0\u2223\u23fd\uffe8|]/g;

/**
 * What text looks like on screen: accents dropped (é, ä, ł read as e, a, l at
 * a glance), characters that look alike folded to one (Unicode's confusables
 * table: Cyrillic е and Latin e, 1 and l, rn and m). Folded again after
 * lower-casing, since an upper-case letter may be confusable only once
 * lowered (M is not, m is: rn); the result is for comparing, not showing,
 * and may hold upper-case letters the table folds to.
 */
export function textSkeleton(text: string): string {
  const folded = text
    .normalize('NFKC')
    .replace(VERTICAL_STROKES, 'l')
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .replace(/\u0142/g, 'l')
    .replace(/\u0141/g, 'L');
  return unhomoglyph(unhomoglyph(folded).toLowerCase());
}

/** What a domain looks like on screen (textSkeleton of it, without a trailing dot). */
export function domainSkeleton(written: string): string {
  return textSkeleton(written.slice(0, MAX_DOMAIN).normalize('NFKC').trim().replace(/\.$/, ''));
}

/** Suffixes whose slips and extensions (co, cm, om; com.mx) read as them: country suffixes' slips are other countries. */
const GENERIC_SUFFIXES = new Set(['com', 'net', 'org']);

/** What one slip of the keyboard can type in a domain name's label. */
const LABEL_CHARACTERS = 'abcdefghijklmnopqrstuvwxyz0123456789-';

/** Labels longer than this are not searched for typing slips (the search grows with the length; a long name is rarely mistyped on purpose). */
const MAX_TYPO_LABEL = 40;

/**
 * Mailbox providers most people write to. A local domain one slip away from
 * one of them (a local `hotmall.com`) must not turn every hotmail.com sender
 * into a cousin.
 */
const MAILBOX_PROVIDERS = new Set([
  'gmail.com', 'googlemail.com', 'outlook.com', 'hotmail.com', 'live.com', 'msn.com', 'yahoo.com', 'ymail.com',
  'aol.com', 'icloud.com', 'me.com', 'mac.com', 'gmx.com', 'gmx.net', 'gmx.de', 'web.de', 't-online.de',
  'mail.ru', 'yandex.ru', 'yandex.com', 'qq.com', '163.com', '126.com', 'proton.me', 'protonmail.com',
  'zoho.com', 'fastmail.com', 'orange.fr', 'free.fr', 'comcast.net', 'att.net', 'verizon.net',
]);

/**
 * The first string one edit from `label` that `found` accepts: a letter left
 * out, swapped with its neighbour, changed, or added (or doubled). Only the
 * edits that give a length in `lengths` are tried: most domains are no slip
 * from any local name.
 */
function firstSlip<T>(label: string, lengths: Set<number>, found: (candidate: string) => T | undefined): T | undefined {
  const n = label.length;
  const shorter = lengths.has(n - 1);
  const same = lengths.has(n);
  const longer = lengths.has(n + 1);
  for (let i = 0; i <= n; i++) {
    const head = label.slice(0, i);
    const tail = label.slice(i);
    let hit: T | undefined;
    if (shorter && tail && (hit = found(head + tail.slice(1)))) return hit;
    if (same && tail.length > 1 && tail[0] !== tail[1] && (hit = found(head + tail[1]! + tail[0]! + tail.slice(2)))) return hit;
    for (const c of LABEL_CHARACTERS) {
      if (same && tail && c !== tail[0] && (hit = found(head + c + tail.slice(1)))) return hit;
      if (longer && (hit = found(head + c + tail))) return hit;
    }
  }
  return undefined;
}

function oneSlipApart(from: string, to: string): boolean {
  return firstSlip(from, new Set([to.length]), (slip) => (slip === to ? true : undefined)) === true;
}

/**
 * The registrable name of an ASCII domain split in two: its label, in lower
 * case and Unicode (what a person typed), and its public suffix. Not the
 * skeleton: that writes m as rn, which no typing slip does.
 */
function nameAndSuffix(ascii: string): { label: string; suffix: string } | undefined {
  // Private suffixes too: the name of myorg.github.io is myorg, not github.
  const registrable = getDomain(ascii, { allowPrivateDomains: true });
  const suffix = getPublicSuffix(ascii, { allowPrivateDomains: true });
  if (!registrable || !suffix || registrable.length <= suffix.length + 1) return undefined;
  const label = registrable.slice(0, registrable.length - suffix.length - 1);
  return { label: label.startsWith('xn--') ? domainToUnicode(label) || label : label, suffix };
}

export interface Cousin {
  /** The local domain it imitates. */
  local: string;
  /** How: it reads as the local one, it is one typing slip away, or it is the local name under a slip or an extension of its suffix. */
  kind: 'looks' | 'typo' | 'suffix';
}

/**
 * Finds cousin domains of our own: a domain that is not local but reads as
 * one on screen (`examp1e.com`, `exarnple.com`, `еxample.com` with a
 * Cyrillic е), and, when asked, one a typing slip away (`exmaple.com`) or our
 * name under a slip of our suffix (`example.co`). Such a domain passes SPF, DKIM and
 * DMARC for whoever registered it, so authentication alone never catches it.
 */
export class LookalikeDomains {
  /** Local domains by skeleton, and the local and ignored domains themselves: looked up, not walked (a hosting MX has thousands). */
  private readonly bySkeleton = new Map<string, string>();
  private readonly known: Set<string>;
  /** Local registrable names by label (lower case), for typing slips and other suffixes; empty when those are not looked for. */
  private readonly byLabel = new Map<string, { local: string; suffix: string }[]>();
  /** Lengths of those labels: a domain whose label is no slip away from any of them is not searched. */
  private readonly labelLengths = new Set<number>();
  /** Answers by domain as written: senders' domains repeat, and the slip search is the costly part. */
  private readonly answers = new LRUCache<string, Cousin | false>({ max: 10_000 });

  /**
   * @param localDomains our domains, in their ASCII form (a look-alike of a subdomain counts too)
   * @param ignored domains (and their subdomains) that resemble ours and are known good
   * @param typoMinLength also find typing slips and other suffixes of local names at least this long (0: do not)
   */
  constructor(localDomains: string[], ignored: string[], typoMinLength = 0) {
    this.known = new Set([...localDomains, ...ignored]);
    for (const domain of localDomains) {
      if (!domain || /[*?]/.test(domain)) continue;
      const skeleton = domainSkeleton(domainToUnicode(domain) || domain);
      if (!this.bySkeleton.has(skeleton)) this.bySkeleton.set(skeleton, domain);
      const name = typoMinLength > 0 ? nameAndSuffix(domain) : undefined;
      const label = name?.label;
      if (!name || !label || label.length < typoMinLength || label.length > MAX_TYPO_LABEL) continue;
      const entries = this.byLabel.get(label) ?? [];
      if (!entries.some((e) => e.suffix === name.suffix)) entries.push({ local: domain, suffix: name.suffix });
      this.byLabel.set(label, entries);
      this.labelLengths.add(label.length);
    }
  }

  /**
   * The local domain `written` is a cousin of, and how, or undefined. A domain
   * that reads as a local one wins over a typing slip: it is the stronger sign.
   */
  cousin(written: string): Cousin | undefined {
    const key = written.slice(0, MAX_DOMAIN);
    let answer = this.answers.get(key);
    if (answer === undefined) {
      // Kept past this message: its own copy, not a view into the header it came from (see detached).
      const own = detached(key);
      answer = this.findCousin(own) ?? false;
      this.answers.set(own, answer);
    }
    return answer || undefined;
  }

  private findCousin(written: string): Cousin | undefined {
    const ascii = this.foreign(written);
    if (!ascii) return undefined;
    const looks = this.readsAs(ascii, written);
    if (looks) return { local: looks, kind: 'looks' };
    if (!this.byLabel.size || MAILBOX_PROVIDERS.has(getDomain(ascii) ?? '')) return undefined;
    const name = nameAndSuffix(ascii);
    if (!name || name.label.length > MAX_TYPO_LABEL + 1) return undefined;
    // Our name under a suffix that reads as ours: a slip of a generic one (example.co, example.cm
    // for example.com) or it extended (example.com.mx). Between country suffixes a slip is another
    // country (siemens.de, siemens.dk), and example.org is often somebody else's: neither counts.
    const sameName = this.byLabel
      .get(name.label)
      ?.find((e) => GENERIC_SUFFIXES.has(e.suffix) && (name.suffix.startsWith(`${e.suffix}.`) || oneSlipApart(e.suffix, name.suffix)));
    if (sameName) return { local: sameName.local, kind: 'suffix' };
    const local = firstSlip(name.label, this.labelLengths, (slip) => this.byLabel.get(slip)?.find((e) => e.suffix === name.suffix));
    if (local) return { local: local.local, kind: 'typo' };
    return undefined;
  }

  /** The local domain `written` imitates, or undefined (it is local, ignored, or looks like none). */
  imitated(written: string): string | undefined {
    const ascii = this.foreign(written.slice(0, MAX_DOMAIN));
    return ascii && this.readsAs(ascii, written);
  }

  /** `written` in ASCII when it is a domain that is neither ours nor ignored: the only ones that can be cousins. */
  private foreign(written: string): string | undefined {
    if (!this.bySkeleton.size) return undefined;
    const ascii = asciiDomain(written);
    if (!ascii.includes('.') || domainAndParents(ascii).some((d) => this.known.has(d))) return undefined;
    return ascii;
  }

  /** The local domain a foreign domain reads as on screen, or undefined. */
  private readsAs(ascii: string, written: string): string | undefined {
    // As a client shows punycode (xn--xample-2of.com), and as written when its case is mixed
    // (exampIe.com: an upper-case I among lower case reads as l; AI.COM is read as ai.com).
    const forms = new Set([domainSkeleton(domainToUnicode(ascii) || ascii)]);
    if (/\p{Lu}/u.test(written) && /\p{Ll}/u.test(written)) forms.add(domainSkeleton(written));
    for (const form of forms) {
      for (const candidate of domainAndParents(form)) {
        const local = this.bySkeleton.get(candidate);
        if (local) return local;
      }
    }
    return undefined;
  }
}
