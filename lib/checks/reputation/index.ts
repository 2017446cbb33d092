import type { CheckModule } from '../types';

/** Placeholder until the reputation issue lands: no symbols, no checks. */
export interface ReputationSettings {
  enabled: boolean;
}

export const reputationModule: CheckModule<ReputationSettings> = {
  name: 'reputation',
  file: 'mailward.reputation.ini',
  symbols: [],
  parseSettings(reader) {
    return { settings: { enabled: reader.section('main').boolean('enabled', true) } };
  },
  createChecks() {
    return [];
  },
};
