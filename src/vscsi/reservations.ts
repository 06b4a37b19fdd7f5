import type { CommandSpec } from './command.js';

export const reservationCommands: CommandSpec[] = [];
