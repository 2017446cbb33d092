import { authResults, sealerRecordedPass } from '../checks/auth/results';
import type { MessageContext } from '../message';
import { asciiDomain } from '../util/domain';
import type { HeldAuth } from './types';

/**
 * What a held message keeps of the auth check's results (QuarantineEntry.auth), read when it is
 * held: release-approve decides from it whether a trusted ARC sealer vouched for the From: it
 * approves, instead of reading DMARC_FAIL_ARC_OVERRIDE's wording. Undefined when auth did not run.
 */
export function heldAuth(ctx: MessageContext): HeldAuth | undefined {
  const auth = authResults(ctx);
  if (!auth) return undefined;
  // The rules' arcVouch (an allow entry holds) asks the same: an override, a pass recorded for this
  // From: domain, and that domain the single From: domain (fromDomain: not one of two addresses of it,
  // whose DMARC is judged once, per author domain, and which no entry matches).
  const single = !!auth.fromDomain && asciiDomain(auth.fromDomain) === asciiDomain(auth.dmarc.domain);
  const vouched = !!auth.dmarc.arcOverride && sealerRecordedPass(auth) && single;
  return { arcVouchedFor: vouched ? asciiDomain(auth.dmarc.domain) : '' };
}
