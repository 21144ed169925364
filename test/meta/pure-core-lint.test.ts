// The sans-IO rule is enforced by ESLint; this checks that the rule itself still bites.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';

const offending = [
  ["import { createSocket } from 'node:dgram';", 'no-restricted-imports'],
  ["import * as fs from 'fs';", 'no-restricted-imports'],
  ['export const t = Date.now();', 'no-restricted-properties'],
  ['export const t = process.hrtime.bigint();', 'no-restricted-properties'],
  ['export const t = new Date();', 'no-restricted-syntax'],
  ['setTimeout(() => undefined, 1);', 'no-restricted-globals'],
  ['export const t = performance.now();', 'no-restricted-globals'],
] as const;

for (const dir of ['src/proto', 'src/crypto']) {
  for (const [code, rule] of offending) {
    test(`${dir} rejects: ${code}`, async () => {
      const eslint = new ESLint();
      const [result] = await eslint.lintText(`${code}\n`, { filePath: `${dir}/__probe__.ts` });
      assert.ok(result);
      const rules = result.messages.map((m) => m.ruleId);
      assert.ok(rules.includes(rule), `expected ${rule}, got ${JSON.stringify(result.messages)}`);
    });
  }
}

test('the I/O shells may use sockets and clocks', async () => {
  const eslint = new ESLint();
  const [result] = await eslint.lintText("import { createSocket } from 'node:dgram';\nexport const s = createSocket;\nexport const t = Date.now();\n", {
    filePath: 'src/server/__probe__.ts',
  });
  assert.ok(result);
  assert.deepEqual(
    result.messages.filter((m) => m.ruleId?.startsWith('no-restricted')),
    [],
  );
});
