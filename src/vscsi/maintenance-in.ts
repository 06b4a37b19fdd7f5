import type { CommandSpec } from './command.js';

export const maintenanceCommands: CommandSpec[] = [];
