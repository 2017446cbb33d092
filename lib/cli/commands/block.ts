import { blockCommand } from '../../checks/rules/cli';
import type { CliCommand } from '../types';

/** `mailward block add|remove|list`: blocked senders (docs/rules.md). */
export const command: CliCommand = blockCommand;
