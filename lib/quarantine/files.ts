import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { QuarantineEntry, QuarantineStore } from './types';

/**
 * Embedded quarantine: each held message as REF.eml beside REF.json (its
 * verdict), written to a temporary name first so a crash never leaves half a
 * message that looks whole.
 */
export class FileQuarantine implements QuarantineStore {
  constructor(readonly dir: string) {}

  private paths(ref: string) {
    if (!/^[0-9A-Z]+$/.test(ref)) throw new Error(`invalid quarantine ref ${JSON.stringify(ref)}`);
    return { eml: join(this.dir, `${ref}.eml`), meta: join(this.dir, `${ref}.json`) };
  }

  async put(entry: QuarantineEntry, raw: Buffer): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const { eml, meta } = this.paths(entry.ref);
    await writeFile(`${eml}.tmp`, raw);
    await rename(`${eml}.tmp`, eml);
    await writeFile(`${meta}.tmp`, JSON.stringify(entry, null, 2));
    await rename(`${meta}.tmp`, meta);
  }

  async get(ref: string): Promise<{ entry: QuarantineEntry; raw: Buffer } | null> {
    const { eml, meta } = this.paths(ref);
    try {
      const [raw, json] = await Promise.all([readFile(eml), readFile(meta, 'utf8')]);
      return { entry: JSON.parse(json) as QuarantineEntry, raw };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async close(): Promise<void> {}
}
