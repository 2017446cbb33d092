import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { configFiles, loadConfig } from '../../lib/config/load';
import type { Logger } from '../../lib/checks/types';
import { Runtime } from '../../lib/runtime';
import type { HarakaPlugin } from './haraka';

/**
 * One mailward Runtime per Haraka process, shared by every mailward plugin:
 * one configuration, one DNS cache, one state connection. Files are read
 * through Haraka's config loader (so they live in Haraka's config/ and are
 * watched); a change rebuilds the runtime, and a broken change keeps the last
 * good one in force, logged.
 */
let current: Runtime | undefined;
let reloadTimer: NodeJS.Timeout | undefined;
let reader: HarakaPlugin | undefined;

function loggerFor(plugin: HarakaPlugin): Logger {
  return {
    debug: (m) => plugin.logdebug(m),
    info: (m) => plugin.loginfo(m),
    warn: (m) => plugin.logwarn(m),
    error: (m) => plugin.logerror(m),
  };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * A config file's lines through Haraka's loader (which watches it), or none
 * once the file is gone: haraka-config keeps serving a deleted file's last
 * text from its cache, so an operator who removes an override would keep its
 * rules in force until a restart while `mailward scan` reads the defaults.
 */
function configLines(plugin: HarakaPlugin, file: string): string[] | null {
  const lines: string[] = plugin.config.get(file, 'data', () => scheduleReload()) ?? [];
  const places = [plugin.config.overrides_path, plugin.config.root_path].filter((dir): dir is string => !!dir);
  // null: not there (the shipped file applies); [] from a file that exists: an empty file.
  if (places.length) return places.some((dir) => existsSync(join(dir, file))) ? lines : null;
  return lines.length ? lines : null;
}

function build(plugin: HarakaPlugin, previous?: Runtime): Runtime {
  const texts: Record<string, string[] | null> = {};
  for (const file of configFiles()) texts[file] = configLines(plugin, file);
  // A file the configuration names (an operator's own rules_file) is read, and watched, the same way.
  const config = loadConfig({ texts, readFile: (file) => configLines(plugin, file), baseDir: process.env.HARAKA ?? process.cwd() });
  // An edit elsewhere must not forget what the node learnt (with memory state, everything).
  const keep = previous && same(previous.config.shared.state, config.shared.state);
  if (previous && !same(previous.config.shared.tracking, config.shared.tracking)) {
    plugin.logwarn('mailward: [tracking] changes take effect when Haraka restarts; rows still go where they went');
  }
  const runtime = new Runtime(config, { log: loggerFor(plugin), state: keep ? previous.services.state : undefined, adoptState: keep });
  // Only once the new runtime exists: a failed reload leaves the old one owning its store.
  if (keep) previous.handOverState();
  return runtime;
}

function scheduleReload(): void {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    // A reload renews a running runtime: after closeRuntime() a late change (a config directory
    // removed) must not build one from the old plugin, for the next runtimeFor() to hand out.
    if (!reader || !current) return;
    try {
      const previous = current;
      current = build(reader, previous);
      reader.loginfo('mailward configuration reloaded');
      // Let in-flight checks finish on the old runtime before closing it.
      if (previous) setTimeout(() => void previous.close().catch(() => {}), 30_000).unref();
    } catch (err) {
      reader.logerror(`mailward configuration NOT reloaded, the previous one stays in force: ${(err as Error).message}`);
    }
  }, 200);
  reloadTimer.unref();
}

/** Worker processes Haraka runs (smtp.ini [main] nodes; unset, Haraka forks one worker). */
function workers(plugin: HarakaPlugin): number {
  const nodes = (plugin.config.get('smtp.ini', 'ini') as { main?: { nodes?: unknown } } | undefined)?.main?.nodes;
  if (nodes === 'cpus') return availableParallelism();
  const n = Number(nodes ?? 1);
  return Number.isFinite(n) ? n : 1;
}

/** The process's runtime, built on first use. Throws (at register time) if the config is invalid. */
export function runtimeFor(plugin: HarakaPlugin): Runtime {
  if (!current) {
    reader = plugin;
    current = build(plugin);
    // Haraka's cluster mode (smtp.ini nodes > 1) runs one process per worker: with memory
    // state each keeps its own counters, blocks and suspensions (N workers, N-fold thresholds).
    if (cluster.isWorker && workers(plugin) > 1 && current.config.shared.state.backend === 'memory') {
      plugin.logwarn('mailward: Haraka runs several worker processes and [state] backend = memory: each worker counts, throttles and suspends alone; use backend = redis, or nodes = 0');
    }
  }
  return current;
}

export async function closeRuntime(): Promise<void> {
  const r = current;
  current = undefined;
  reader = undefined;
  clearTimeout(reloadTimer);
  await r?.close();
}
