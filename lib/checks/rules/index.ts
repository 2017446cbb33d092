import type { CheckModule } from '../types';

/** Placeholder until the rules issue lands: no symbols, no checks. */
export interface RulesSettings {
  enabled: boolean;
}

export const rulesModule: CheckModule<RulesSettings> = {
  name: 'rules',
  file: 'mailward.rules.ini',
  symbols: [],
  parseSettings(reader) {
    return { settings: { enabled: reader.section('main').boolean('enabled', true) } };
  },
  createChecks() {
    return [];
  },
};
