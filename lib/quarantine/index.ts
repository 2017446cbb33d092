import type { Logger } from '../checks/types';
import type { SharedSettings } from '../config/shared';
import { FileQuarantine } from './files';
import { PostgresQuarantineIndex } from './index-postgres';

export { FileQuarantine, closeSharedIndexes, CorruptRecordError, damage, type FileQuarantineOptions } from './files';
export { SqliteQuarantineIndex } from './index-sqlite';
export { ClaimBusyError, describeClaim, STALE_LOCK_MS, type ClaimInfo } from './claim';
export { PostgresQuarantineIndex } from './index-postgres';
export { QuarantineFullError, isQuarantineFull, usageFor, forgetUsage, onDisk, countDirectory, whileFull, MAKE_ROOM, mb, BLOCK_BYTES, RESCAN_MS, type FullReason } from './usage';
export { heldAuth } from './held-auth';
export { releaseMessage, type ReleaseOptions, type ReleaseResult, ReleaseError } from './release';
export type { HeldAuth, HeldSummary, QuarantineEntry, QuarantineRecord, QuarantineFilter, QuarantineIndex, QuarantineStore, QuarantineStatus } from './types';

/**
 * The quarantine as configured: files in `[quarantine] dir` with a SQLite
 * index there (one node), or a PostgreSQL index in the tracking database when
 * `[tracking] backend = postgres` (a fleet sharing that directory).
 */
export function openQuarantine(shared: SharedSettings, log?: Logger): FileQuarantine {
  const { quarantine, tracking } = shared;
  const index =
    tracking.backend === 'postgres'
      ? new PostgresQuarantineIndex({ url: tracking.postgresUrl, schema: tracking.postgresSchema, table: 'mailward_quarantine', log })
      : undefined;
  return new FileQuarantine(quarantine.dir, { index, retentionDays: quarantine.retentionDays, maxBytes: quarantine.maxBytes, whenFull: quarantine.whenFull, log });
}
