import type { Logger } from '../checks/types';
import { MemoryStore } from './memory';
import { RedisStore } from './redis';
import type { StateSettings, StateStore } from './types';

export type { CountMark, CountOnceResult, StateSettings, StateStore, WriteHints } from './types';
export { MemoryStore } from './memory';
export { RedisStore } from './redis';

export function createStateStore(settings: StateSettings, log: Logger): StateStore {
  return settings.backend === 'redis' ? new RedisStore(settings, log) : new MemoryStore(settings.memoryMaxEntries);
}
