import type { CommandSpec } from './command.js';

export const sbcUnmapCommands: CommandSpec[] = [];
