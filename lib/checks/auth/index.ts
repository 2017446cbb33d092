import type { CheckModule } from '../types';

/** Placeholder until the auth issue lands: no symbols, no checks. */
export interface AuthSettings {
  enabled: boolean;
}

export const authModule: CheckModule<AuthSettings> = {
  name: 'auth',
  file: 'mailward.auth.ini',
  symbols: [],
  parseSettings(reader) {
    return { settings: { enabled: reader.section('main').boolean('enabled', true) } };
  },
  createChecks() {
    return [];
  },
};
