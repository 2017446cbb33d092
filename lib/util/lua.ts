import { createHash } from 'node:crypto';

export interface LuaScript {
  source: string;
  sha: string;
}

/** A script with the SHA1 that EVALSHA names it by. */
export function lua(source: string): LuaScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

interface ScriptOptions {
  keys: string[];
  arguments: string[];
}

/** What runScript needs of a node-redis client. */
export interface ScriptClient {
  evalSha(sha: string, options: ScriptOptions): Promise<unknown>;
  eval(source: string, options: ScriptOptions): Promise<unknown>;
}

/** EVALSHA, loading the script with EVAL when the server does not have it cached (a restart, SCRIPT FLUSH). */
export async function runScript(c: ScriptClient, script: LuaScript, options: ScriptOptions): Promise<unknown> {
  try {
    return await c.evalSha(script.sha, options);
  } catch (err) {
    if (!/NOSCRIPT/.test((err as Error).message)) throw err;
    return c.eval(script.source, options);
  }
}
