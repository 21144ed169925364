import { test } from 'node:test';
import assert from 'node:assert/strict';
import { budgetKey } from '../../src/server/services/eks.js';
import { matchToken } from '../../src/server/mgmt/auth.js';
import { createHash } from 'node:crypto';

test('issuance budgets are per IPv4 address and per IPv6 /64 (one subscriber prefix)', () => {
  assert.equal(budgetKey('192.0.2.7'), '192.0.2.7');
  assert.equal(budgetKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(budgetKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.notEqual(budgetKey('2001:db8:1:3::1'), budgetKey('2001:db8:1:2::1'));
  assert.equal(budgetKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(budgetKey('::1'), '0:0:0:0::/64');
  assert.equal(budgetKey('local'), 'local');
});

test('tokens match by SHA-256, never by prefix or case', () => {
  const tokens = [{ name: 'a', sha256: createHash('sha256').update('secret').digest('hex') }];
  assert.equal(matchToken(tokens, 'secret')?.name, 'a');
  assert.equal(matchToken(tokens, 'Secret'), null);
  assert.equal(matchToken(tokens, 'secre'), null);
  assert.equal(matchToken([], 'secret'), null);
});

test('a reload that changes the key lifetime (or the rotation it defaults from) needs a restart to apply it', async () => {
  const { changedKeys } = await import('../../src/server/daemon.js');
  const { loadConfigText } = await import('../../src/config/index.js');
  const load = (text: string) => {
    const result = loadConfigText(text, 't');
    assert.ok(result.ok);
    return result.value;
  };
  const base = load('');
  assert.deepEqual(changedKeys(base, load('[nts]\nkey-rotation = "12h"\n')).restartRequired, ['eks.key-lifetime']);
  assert.deepEqual(changedKeys(base, load('[eks]\nkey-lifetime = "3d"\n')).restartRequired, ['eks.key-lifetime']);
  assert.deepEqual(changedKeys(base, load('[eks]\nissue-burst = 9\n')), { changed: ['eks'], restartRequired: [] });
});
