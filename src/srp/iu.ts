/** SRP information units: one import for every codec (families live in iu-*.ts). */
export * from './iu-common.js';
export * from './iu-login.js';
export * from './iu-cmd.js';
export * from './iu-async.js';
