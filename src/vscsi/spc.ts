import type { CommandSpec } from './command.js';

export const spcCommands: CommandSpec[] = [];
