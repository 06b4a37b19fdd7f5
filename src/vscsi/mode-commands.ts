import type { CommandSpec } from './command.js';

export const modeCommands: CommandSpec[] = [];
