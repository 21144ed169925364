// docs/management.md is the specification the service follows; this keeps it and src/proto/mgmt/types.ts in step.
// Doc format (docs/management.md §11): each method is a heading `### Method \`name\``, followed by a line
// `Role: \`role\`` and, when it has params, a table whose first column lists them as `name` in backticks; each
// notification is a heading `### Notification \`name\``. Error codes are rows `| -32xxx | name | ...` of §5.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { LOG_LEVELS as CONFIG_LOG_LEVELS } from '../../src/config/types.js';
import { RpcErrorCode, parseLine, type JsonObject } from '../../src/proto/mgmt/jsonrpc.js';
import { LOG_LEVELS, METHODS, NOTIFICATIONS, checkParams, isMethodName, type MethodName } from '../../src/proto/mgmt/types.js';

const DOC = readFileSync(new URL('../../docs/management.md', import.meta.url), 'utf8');
const LINES = DOC.split('\n');

/** Sections under `### <kind> \`name\``: name → the lines up to the next heading of level ≤ 3. */
function sections(kind: 'Method' | 'Notification'): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const heading = new RegExp(`^### ${kind} \`([^\`]+)\`$`);
  for (let i = 0; i < LINES.length; i++) {
    const m = heading.exec(LINES[i] as string);
    if (!m) continue;
    const name = m[1] as string;
    assert.ok(!out.has(name), `${kind} ${name} is documented twice`);
    let j = i + 1;
    while (j < LINES.length && !/^#{1,3} /.test(LINES[j] as string)) j++;
    out.set(name, LINES.slice(i + 1, j));
  }
  return out;
}

/** `###` headings that look like method or notification headings but do not follow the format exactly. */
function malformedHeadings(): string[] {
  return LINES.filter((l) => /^### (Method|Notification)\b/i.test(l) && !/^### (Method|Notification) `[^`]+`$/.test(l));
}

function shapeKeys(schema: z.ZodType): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape).sort() : [];
}

const methods = sections('Method');
const notifications = sections('Notification');

describe('docs/management.md documents exactly the protocol of types.ts', () => {
  it('method and notification headings follow the format', () => {
    assert.deepEqual(malformedHeadings(), []);
    assert.ok(methods.size > 0 && notifications.size > 0, 'no headings found: did the format change?');
  });

  it('every method of METHODS has a section, and every section is a method of METHODS', () => {
    const table = Object.keys(METHODS).sort();
    const doc = [...methods.keys()].sort();
    assert.deepEqual(
      { undocumented: table.filter((m) => !methods.has(m)), notInTable: doc.filter((m) => !isMethodName(m)) },
      { undocumented: [], notInTable: [] },
    );
  });

  it('every notification of NOTIFICATIONS has a section, and the other way round', () => {
    assert.deepEqual([...notifications.keys()].sort(), Object.keys(NOTIFICATIONS).sort());
  });

  for (const name of Object.keys(METHODS) as MethodName[]) {
    it(`method ${name}: role and params match the table`, () => {
      const body = methods.get(name);
      assert.ok(body, `no section for ${name}`);
      const roles = body.map((l) => /^Role: `([a-z]+)`$/.exec(l)?.[1]).filter((r) => r !== undefined);
      assert.deepEqual(roles, [METHODS[name].role], `${name}: one "Role:" line with the table's role`);

      // The params table: rows after a header whose first cell is "param".
      const documented: string[] = [];
      let inTable = false;
      for (const l of body) {
        if (/^\| param \|/.test(l)) inTable = true;
        else if (inTable && /^\| `([^`]+)` \|/.test(l)) documented.push((/^\| `([^`]+)` \|/.exec(l) as RegExpExecArray)[1] as string);
        else if (inTable && !l.startsWith('|')) inTable = false;
      }
      assert.deepEqual(documented.sort(), shapeKeys(METHODS[name].params), `${name}: params table vs schema`);
      if (documented.length === 0) assert.ok(body.some((l) => /No params\./.test(l)), `${name}: say "No params."`);

      for (const p of METHODS[name].positional) {
        assert.ok(body.some((l) => l.includes('Positional form:')), `${name}: positional ${p} is not documented`);
      }
    });
  }

  it('the error code table lists exactly the codes of RpcErrorCode', () => {
    const rows = LINES.map((l) => /^\| (-32\d{3}) \|/.exec(l)?.[1]).filter((c) => c !== undefined).map(Number);
    assert.deepEqual(rows.sort(), Object.values(RpcErrorCode).sort());
  });

  it('the text-form examples of §9 parse to the requests they show', () => {
    const start = LINES.findIndex((l) => l.startsWith('## 9.'));
    const end = LINES.findIndex((l, i) => i > start && l.startsWith('## '));
    const rows = LINES.slice(start, end)
      .map((l) => /^\| `([^`]+)` \| (.+) \|$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null);
    assert.ok(rows.length >= 6, 'the example table of §9 was not found');
    for (const [, line, want] of rows as unknown as [string, string, string][]) {
      const r = parseLine(line);
      const json = /^`(\{.*\})`$/.exec(want);
      if (json) {
        const expected = JSON.parse(json[1] as string) as { method: MethodName; params: JsonObject };
        assert.ok(r.ok && r.value, `${line}: ${r.ok ? 'blank' : r.error.message}`);
        assert.equal(r.value.method, expected.method, line);
        const checked = checkParams(expected.method, r.value.params, r.value.args);
        assert.ok(checked.ok, `${line}: ${checked.ok ? '' : checked.error.message}`);
        // Compare with the doc's params completed by the same schema (defaults).
        const completed = checkParams(expected.method, expected.params);
        assert.ok(completed.ok);
        assert.deepEqual(checked.value, completed.value, line);
      } else {
        const code = Number(/`(-32\d{3})`/.exec(want)?.[1]);
        assert.ok(code, `${line}: the expected column names neither a request nor an error code`);
        const got = r.ok && r.value ? (isMethodName(r.value.method) ? checkParams(r.value.method, r.value.params, r.value.args) : undefined) : r;
        assert.ok(got && !got.ok, `${line}: expected error ${code}`);
        const gotCode = 'rpc' in got.error ? got.error.rpc.code : got.error.code;
        assert.equal(gotCode, code, line);
      }
    }
  });

  it('log levels are the configuration’s', () => {
    assert.deepEqual([...LOG_LEVELS], [...CONFIG_LOG_LEVELS]);
  });
});
