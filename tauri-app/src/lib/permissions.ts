// What the logged-in user may do, read from the grants the login answer carries
// (`user.permissions`, made by the sidecar's one permission matrix): the UI offers a control
// only when this says yes, and never re-decides the matrix itself.
import type { Schemas } from '../api/client';

export type Action = Schemas['Action'];
type User = Pick<Schemas['UserPublic'], 'username' | 'permissions'>;

/**
 * Whether `user` may do `action`. For an action on an inspection, `owner` is the username it
 * belongs to: a grant on one's own inspections then holds only for one's own. Without `owner`
 * the question is whether the role may do it at all (on the tablet, or on its own inspections).
 * A login stored before grants were carried has none: nothing is offered until it logs in again.
 */
export function may(user: User | null | undefined, action: Action, owner?: string | null): boolean {
  const scope = user?.permissions?.[action];
  if (!user || !scope) return false;
  if (scope === 'any' || owner === undefined) return true;
  return owner !== null && owner === user.username;
}
