import { describe, expect, it } from 'vitest';
import { may, type Action } from './permissions';

// The grants as the sidecar's login answer carries them for each role (sidecar.domain.access).
const inspector = {
  username: 'tanaka',
  permissions: { read: 'own', work: 'own', discard: 'own', inspect: 'any' },
} as const;
const supervisor = {
  username: 'suzuki',
  permissions: { read: 'any', work: 'own', discard: 'any', override: 'any', inspect: 'any', set_aside: 'any', users: 'any' },
} as const;
const admin = {
  username: 'admin',
  permissions: { read: 'any', work: 'own', discard: 'any', inspect: 'any', set_aside: 'any', users: 'any', connect: 'any' },
} as const;

describe('may', () => {
  const cases: [string, typeof inspector | typeof supervisor | typeof admin, Action, string | undefined, boolean][] = [
    ['an inspector works on their own', inspector, 'work', 'tanaka', true],
    ["an inspector does not work on another's", inspector, 'work', 'sato', false],
    ["an inspector does not discard another's", inspector, 'discard', 'sato', false],
    ['an inspector does not connect the tablet', inspector, 'connect', undefined, false],
    ["a supervisor discards another's", supervisor, 'discard', 'tanaka', true],
    ["a supervisor does not resume another's", supervisor, 'work', 'tanaka', false],
    ['a supervisor re-judges', supervisor, 'override', 'tanaka', true],
    ['a supervisor does not connect the tablet', supervisor, 'connect', undefined, false],
    ['an admin connects the tablet', admin, 'connect', undefined, true],
    ['an admin does not re-judge', admin, 'override', 'tanaka', false],
    ['a role may work at all when it may on its own', inspector, 'work', undefined, true],
  ];
  it.each(cases)('%s', (_, user, action, owner, allowed) => {
    expect(may(user, action, owner)).toBe(allowed);
  });

  it('offers nothing without a login, without grants, or on a record of nobody', () => {
    expect(may(null, 'read')).toBe(false);
    expect(may({ username: 'x', permissions: {} }, 'read')).toBe(false);
    expect(may({ username: 'x' } as unknown as typeof inspector, 'read')).toBe(false);
    expect(may(inspector, 'read', null)).toBe(false);
    expect(may(supervisor, 'read', null)).toBe(true);
  });
});
