import type { IniReader, SectionReader } from '../../config/reader';
import type { ConfigTexts } from '../types';
import { asciiDomain } from '../../util/domain';
import { IpSet } from '../../util/ip';

export { IpSet };

/** Who may send mail claiming a local domain. */
export interface SenderPolicy {
  ips: IpSet;
  /** Forward-confirmed PTR names ending in one of these (".mail.example.com" or "example.com"). */
  ptrSuffixes: string[];
  /** A valid DKIM signature aligned with the domain authorises the mail. */
  alignedDkim: boolean;
  /** An SPF pass aligned with the domain authorises the mail. */
  alignedSpf: boolean;
  /** A DMARC fail neutralised by a trusted ARC sealer (auth's [arc] trusted_sealers) authorises the mail. */
  trustedArc: boolean;
}

/**
 * A third-party service recognised by evidence in the message, for the local
 * domains it sends as. Every condition given must hold (never a blanket allow).
 */
export interface TrustedService {
  name: string;
  domains: string[];
  /** Each text must appear in some Received: header. */
  receivedContains: string[];
  /** The connecting IP is in this set (if any given). */
  ips: IpSet;
  /** The connecting IP has a forward-confirmed PTR within one of these (if any given). */
  ptrSuffixes: string[];
  /** A valid DKIM signature by one of these domains or their subdomains (if any given). */
  dkimDomains: string[];
}

export interface AntispoofSettings {
  enabled: boolean;
  skipRelaying: boolean;
  /** Our own domains (and their subdomains). */
  domains: string[];
  /** Whether the MTA's host_list counted as local domains. */
  useHostList: boolean;
  /** Also check MAIL FROM, not only the From: header. */
  checkEnvelope: boolean;
  /** For every local domain; a [domain:NAME] section adds to it. */
  authorised: SenderPolicy;
  perDomain: Map<string, SenderPolicy>;
  services: TrustedService[];
  /** Display names of local people (lower case, single-spaced). */
  protectedNames: string[];
  /** A display name holding an address of a local domain while the sender is external. */
  displayNameAddresses: boolean;
  /** Flag domains that read as a local one on screen (examp1e.com, Cyrillic е). */
  lookalike: boolean;
  /** Domains (and subdomains) that resemble a local one and are known good. */
  lookalikeIgnore: string[];
  /** Also flag typing slips of local names at least this long, and local names under a slip or extension of their suffix (0: off). */
  typoMinLength: number;
}

export const ANTISPOOF_DEFAULTS = {
  enabled: true,
  skipRelaying: true,
  checkEnvelope: true,
  alignedDkim: true,
  alignedSpf: true,
  trustedArc: true,
  displayNameAddresses: true,
  useHostList: true,
  lookalike: true,
  typoMinLength: 6,
};

/** Domains of an MTA's host_list file (Haraka's list of domains it accepts mail for). */
export function hostListDomains(files: ConfigTexts | undefined): string[] {
  const found = files?.text('host_list');
  if (!found) return [];
  return found.text
    .split(/\r?\n/)
    .map((line) => line.replace(/[#;].*$/, '').trim())
    .filter(Boolean)
    .map(asciiDomain);
}

/** A name as a reader sees it, case kept: NFKC, without the invisible characters a forger slips between letters. */
export function visibleText(name: string): string {
  // zero-width, joiners, direction marks, BOM, soft hyphen
  return name.normalize('NFKC').replace(/[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]/g, '');
}

export function normaliseName(name: string): string {
  return visibleText(name)
    .replace(/["'“”‘’]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
}

function ipSet(section: SectionReader, key: string, base: string[] = []): IpSet {
  const entries = [...base, ...section.list(key)];
  try {
    return new IpSet(entries);
  } catch (err) {
    throw section.error(key, (err as Error).message);
  }
}

function domains(section: SectionReader, key: string): string[] {
  return section.list(key).map(asciiDomain).filter(Boolean);
}

function suffixes(section: SectionReader, key: string): string[] {
  return section.list(key).map((s) => asciiDomain(s.replace(/^\*?\./, '')));
}

/** [lookalike] typo_min_length, or 0 when typos = false (the length is read either way: a key is never "unknown" for being switched off). */
function typoMinLength(section: SectionReader, fallback: number): number {
  const length = section.number('typo_min_length', fallback, { integer: true, min: 3, max: 40 });
  return section.boolean('typos', true) ? length : 0;
}

export function parseAntispoofSettings(reader: IniReader, files?: ConfigTexts): AntispoofSettings {
  const main = reader.section('main');
  const skip = reader.section('skip');
  const domainsSection = reader.section('domains');
  const authorisedSection = reader.section('authorised');
  const displaySection = reader.section('display_name');
  const lookalikeSection = reader.section('lookalike');
  const d = ANTISPOOF_DEFAULTS;

  const authorised: SenderPolicy = {
    ips: ipSet(authorisedSection, 'ips'),
    ptrSuffixes: suffixes(authorisedSection, 'ptr_suffixes'),
    alignedDkim: authorisedSection.boolean('aligned_dkim', d.alignedDkim),
    alignedSpf: authorisedSection.boolean('aligned_spf', d.alignedSpf),
    trustedArc: authorisedSection.boolean('trusted_arc', d.trustedArc),
  };

  const perDomain = new Map<string, SenderPolicy>();
  for (const section of reader.sectionsMatching(/^domain:/)) {
    const domain = asciiDomain(section.name.slice('domain:'.length));
    if (!domain) throw section.error(null, 'section needs a domain name: [domain:example.com]');
    perDomain.set(domain, {
      ips: ipSet(section, 'ips', authorised.ips.entries),
      ptrSuffixes: [...authorised.ptrSuffixes, ...suffixes(section, 'ptr_suffixes')],
      alignedDkim: section.boolean('aligned_dkim', authorised.alignedDkim),
      alignedSpf: section.boolean('aligned_spf', authorised.alignedSpf),
      trustedArc: section.boolean('trusted_arc', authorised.trustedArc),
    });
  }

  const services: TrustedService[] = [];
  for (const section of reader.sectionsMatching(/^service:/)) {
    const service: TrustedService = {
      name: section.name.slice('service:'.length).trim(),
      domains: domains(section, 'domains'),
      // Received texts may contain spaces only as separators; commas and spaces both split.
      receivedContains: section.list('received_contains').map((s) => s.toLowerCase()),
      ips: ipSet(section, 'ips'),
      ptrSuffixes: suffixes(section, 'ptr_suffixes'),
      dkimDomains: domains(section, 'dkim_domains'),
    };
    if (!service.domains.length) throw section.error('domains', 'a trusted service must name the local domains it sends as');
    if (!service.receivedContains.length && !service.ips.size && !service.ptrSuffixes.length && !service.dkimDomains.length) {
      throw section.error(null, 'a trusted service needs evidence (received_contains, ips, ptr_suffixes or dkim_domains): without it, it would allow anyone to use the domain');
    }
    services.push(service);
  }

  const useHostList = domainsSection.boolean('use_host_list', d.useHostList);
  const fromHostList = useHostList ? hostListDomains(files) : [];
  const localDomains = [...new Set([...domains(domainsSection, 'list'), ...fromHostList, ...perDomain.keys(), ...services.flatMap((s) => s.domains)])];

  return {
    enabled: main.boolean('enabled', d.enabled),
    skipRelaying: skip.boolean('relaying', d.skipRelaying),
    domains: localDomains,
    checkEnvelope: domainsSection.boolean('check_envelope', d.checkEnvelope),
    useHostList,
    authorised,
    perDomain,
    services,
    // Names contain spaces: only commas separate them.
    protectedNames: displaySection
      .string('protected', '')
      .split(',')
      .map(normaliseName)
      .filter(Boolean),
    displayNameAddresses: displaySection.boolean('check_addresses', d.displayNameAddresses),
    lookalike: lookalikeSection.boolean('enabled', d.lookalike),
    lookalikeIgnore: domains(lookalikeSection, 'ignore'),
    typoMinLength: typoMinLength(lookalikeSection, d.typoMinLength),
  };
}
