import type { CheckModule } from '../types';

/** Placeholder until the content issue lands: no symbols, no checks. */
export interface ContentSettings {
  enabled: boolean;
}

export const contentModule: CheckModule<ContentSettings> = {
  name: 'content',
  file: 'mailward.content.ini',
  symbols: [],
  parseSettings(reader) {
    return { settings: { enabled: reader.section('main').boolean('enabled', true) } };
  },
  createChecks() {
    return [];
  },
};
