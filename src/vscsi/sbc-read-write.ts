import type { CommandSpec } from './command.js';

export const sbcReadWriteCommands: CommandSpec[] = [];
