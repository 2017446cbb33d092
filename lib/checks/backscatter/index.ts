import type { CheckModule } from '../types';

/** Placeholder until the backscatter issue lands: no symbols, no checks. */
export interface BackscatterSettings {
  enabled: boolean;
}

export const backscatterModule: CheckModule<BackscatterSettings> = {
  name: 'backscatter',
  file: 'mailward.backscatter.ini',
  symbols: [],
  parseSettings(reader) {
    return { settings: { enabled: reader.section('main').boolean('enabled', true) } };
  },
  createChecks() {
    return [];
  },
};
