import type { CommandSpec } from './command.js';

export const sbcCommands: CommandSpec[] = [];
