import { antispoofModule } from './antispoof';
import { authModule } from './auth';
import { backscatterModule } from './backscatter';
import { builtinModule } from './builtin';
import { contentModule } from './content';
import { outboundModule } from './outbound';
import { reputationModule } from './reputation';
import { rulesModule } from './rules';
import type { CheckModule } from './types';

/**
 * Every check module, in pipeline order: within a phase, modules run in this
 * order (rules after auth, antispoof, content and backscatter, so filter rules
 * and allow lists see their results).
 */
export const ALL_MODULES: CheckModule<any>[] = [
  builtinModule,
  reputationModule,
  authModule,
  antispoofModule,
  contentModule,
  backscatterModule,
  rulesModule,
  outboundModule,
];

export function moduleByName(name: string): CheckModule<any> {
  const found = ALL_MODULES.find((m) => m.name === name);
  if (!found) throw new Error(`no mailward module named ${JSON.stringify(name)} (known: ${ALL_MODULES.map((m) => m.name).join(', ')})`);
  return found;
}
