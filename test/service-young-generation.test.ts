// `vtgt serve` restarts Node with a larger young generation unless one was chosen (young-generation.ts).
import { describe, expect, it } from 'vitest';
import { relaunchWithServiceHeap, SERVICE_SEMI_SPACE_MIB, serviceRelaunchArgv, type RelaunchContext } from '../src/service/young-generation.js';

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

describe('relaunchWithServiceHeap', () => {
  const ctx = (over: Partial<RelaunchContext>): RelaunchContext => ({
    execPath: '/usr/bin/node',
    execArgv: [],
    argv: ['/usr/bin/node', '/opt/vtgt/bin/vtgt.js', 'serve'],
    nodeOptions: undefined,
    exec: () => {
      throw new Error('exec must not be called');
    },
    ...over,
  });

  it('execs Node with the flag in front of the script', () => {
    const calls: Array<[string, string[]]> = [];
    const warnings: string[] = [];
    relaunchWithServiceHeap((m) => warnings.push(m), ctx({ exec: ((p: string, a: string[]) => void calls.push([p, a])) as RelaunchContext['exec'] }));
    expect(calls).toEqual([['/usr/bin/node', ['/usr/bin/node', FLAG, '/opt/vtgt/bin/vtgt.js', 'serve']]]);
    expect(warnings).toEqual([]);
  });

  it('does not exec when the size was chosen', () => {
    const warnings: string[] = [];
    relaunchWithServiceHeap((m) => warnings.push(m), ctx({ execArgv: ['--max-semi-space-size=16'] }));
    expect(warnings).toEqual([]);
  });

  it('says why and carries on when the exec fails', () => {
    const warnings: string[] = [];
    relaunchWithServiceHeap(
      (m) => warnings.push(m),
      ctx({
        exec: () => {
          throw Object.assign(new Error('execve /usr/bin/node: E2BIG (Argument list too long)'), { code: 'E2BIG' });
        },
      }),
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`could not restart Node with ${FLAG} (execve /usr/bin/node: E2BIG`);
    expect(warnings[0]).toContain('V8 default heap sizes');
  });
});
