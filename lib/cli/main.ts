import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/errors';
import { type CliCommand, type CliIO, UserError } from './types';

const COMMANDS_DIR = join(__dirname, 'commands');

function commandNames(): string[] {
  return readdirSync(COMMANDS_DIR)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .sort();
}

function loadCommand(name: string): CliCommand | undefined {
  if (!/^[a-z][a-z-]*$/.test(name)) return undefined;
  const file = join(COMMANDS_DIR, `${name}.js`);
  if (!existsSync(file)) return undefined;
  return (require(file) as { command: CliCommand }).command;
}

function help(io: CliIO): void {
  io.out('usage: mailward <command> [options]\n');
  io.out('commands:');
  for (const name of commandNames()) {
    const command = loadCommand(name);
    if (command) io.out(`  ${name.padEnd(12)} ${command.summary}`);
  }
  io.out('\nmailward <command> --help shows a command\'s options. Docs: docs/cli.md');
}

export const consoleIO: CliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Runs `mailward ...argv`; returns the exit code. User mistakes print one line, never a stack. */
export async function main(argv: string[], io: CliIO = consoleIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    help(io);
    return name ? 0 : 2;
  }
  const command = loadCommand(name);
  if (!command) {
    io.err(`mailward: unknown command ${JSON.stringify(name)} (try mailward --help)`);
    return 2;
  }
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`usage: ${command.usage}\n\n${command.summary}`);
      return 0;
    }
    const args = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    return await command.run(args as never, io);
  } catch (err) {
    if (err instanceof UserError) {
      io.err(`mailward ${name}: ${err.message}`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      io.err(`mailward ${name}: configuration error: ${err.message}`);
      return 3;
    }
    if ((err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`mailward ${name}: ${(err as Error).message}\nusage: ${command.usage}`);
      return 2;
    }
    io.err(`mailward ${name}: internal error: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}
