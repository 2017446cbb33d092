import type { CheckModule } from '../types';

/** Placeholder until the antispoof issue lands: no symbols, no checks. */
export interface AntispoofSettings {
  enabled: boolean;
}

export const antispoofModule: CheckModule<AntispoofSettings> = {
  name: 'antispoof',
  file: 'mailward.antispoof.ini',
  symbols: [],
  parseSettings(reader) {
    return { settings: { enabled: reader.section('main').boolean('enabled', true) } };
  },
  createChecks() {
    return [];
  },
};
