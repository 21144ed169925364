// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ioModules = ['net', 'dgram', 'tls', 'fs', 'fs/promises', 'http', 'https', 'http2', 'child_process', 'cluster', 'worker_threads', 'readline', 'perf_hooks', 'timers', 'timers/promises'];

/** The sans-IO rule: protocol and crypto code takes time as an argument and never touches sockets, files, timers or clocks. */
const pureCoreRules = {
  'no-restricted-imports': [
    'error',
    {
      paths: ioModules.flatMap((m) => [
        { name: m, message: 'src/proto and src/crypto are pure: do I/O in src/server or src/client.' },
        { name: `node:${m}`, message: 'src/proto and src/crypto are pure: do I/O in src/server or src/client.' },
      ]),
    },
  ],
  'no-restricted-globals': [
    'error',
    { name: 'setTimeout', message: 'No timers in the pure core: return a timer action instead.' },
    { name: 'setInterval', message: 'No timers in the pure core: return a timer action instead.' },
    { name: 'setImmediate', message: 'No timers in the pure core.' },
    { name: 'performance', message: 'No clock reads in the pure core: pass the time in.' },
    { name: 'fetch', message: 'No I/O in the pure core.' },
  ],
  'no-restricted-properties': [
    'error',
    { object: 'Date', property: 'now', message: 'No clock reads in the pure core: pass the time in.' },
    { object: 'process', property: 'hrtime', message: 'No clock reads in the pure core: pass the time in.' },
    { object: 'performance', property: 'now', message: 'No clock reads in the pure core: pass the time in.' },
  ],
  'no-restricted-syntax': [
    'error',
    { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'No clock reads in the pure core: pass the time in.' },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { console: 'readonly', process: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', queueMicrotask: 'readonly', structuredClone: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', performance: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/proto/**/*.ts', 'src/crypto/**/*.ts'],
    rules: pureCoreRules,
  },
);
