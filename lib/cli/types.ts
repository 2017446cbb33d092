import type { ParseArgsConfig } from 'node:util';
import type { MailwardConfig } from '../config/load';

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

/** What main() gives every command besides its arguments and output. */
export interface CliContext {
  /**
   * The configuration from `--config DIR` (undefined: the shipped defaults
   * alone), over the shipped defaults main() read once for the command (from
   * the directory main() was given, for tests).
   */
  loadConfig(configDir: string | undefined): MailwardConfig;
}

export interface CliArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * One `mailward <name>` command: a file in lib/cli/commands/ exporting
 * `command`. The dispatcher finds commands by file name, so adding one needs no
 * central list.
 */
export interface CliCommand {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Returns the exit code. Throw UserError for mistakes the user can fix (no stack trace). */
  run(args: CliArgs, io: CliIO, cli: CliContext): Promise<number>;
}

/** A problem the user can fix: printed as one line, exit code 2 by default. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'UserError';
  }
}
