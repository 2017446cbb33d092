import { allowCommand } from '../../checks/rules/cli';
import type { CliCommand } from '../types';

/** `mailward allow add|remove|list`: allowed senders (docs/rules.md). */
export const command: CliCommand = allowCommand;
