// `vtgt serve` restarts Node with a larger young generation unless one was chosen (young-generation.ts).
import { describe, expect, it } from 'vitest';
import { SERVICE_SEMI_SPACE_MIB, serviceRelaunchArgv } from '../src/service/young-generation.js';

const FLAG = `--max-semi-space-size=${SERVICE_SEMI_SPACE_MIB}`;

describe('serviceRelaunchArgv', () => {
  it('puts the flag first and keeps Node options, script and arguments in order', () => {
    expect(serviceRelaunchArgv(['--cpu-prof', '--inspect=0'], ['/usr/bin/node', '/opt/vtgt/bin/vtgt.js', '--data', '/d', 'serve'], undefined)).toEqual([
      '/usr/bin/node',
      FLAG,
      '--cpu-prof',
      '--inspect=0',
      '/opt/vtgt/bin/vtgt.js',
      '--data',
      '/d',
      'serve',
    ]);
  });

  it('leaves a size chosen on the command line or in NODE_OPTIONS alone, in either spelling', () => {
    const argv = ['/usr/bin/node', 'bin/vtgt.js', 'serve'];
    expect(serviceRelaunchArgv([FLAG], argv, undefined)).toBeUndefined();
    expect(serviceRelaunchArgv(['--max_semi_space_size=4'], argv, undefined)).toBeUndefined();
    expect(serviceRelaunchArgv([], argv, '--trace-warnings  --max-semi-space-size=64')).toBeUndefined();
    expect(serviceRelaunchArgv([], argv, '--max_semi_space_size=8')).toBeUndefined();
    // Other heap flags are not a choice of the semi-space size.
    expect(serviceRelaunchArgv(['--max-old-space-size=4096'], argv, '--max-semi-space-sizes')).toEqual([argv[0], FLAG, '--max-old-space-size=4096', ...argv.slice(1)]);
  });

  it('does nothing without a script to restart', () => {
    expect(serviceRelaunchArgv([], ['/usr/bin/node'], undefined)).toBeUndefined();
  });
});
