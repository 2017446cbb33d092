import { join } from 'node:path';
import { packageRoot } from '../../lib/util/package-root';

/** A path inside the repository (fixtures, config), wherever the tests were compiled to. */
export function repoPath(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}
