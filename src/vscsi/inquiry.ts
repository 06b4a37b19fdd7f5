import type { CommandSpec } from './command.js';

export const inquiryCommands: CommandSpec[] = [];
