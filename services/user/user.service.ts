/** User use cases. Callers are authenticated before they get here (see the adapter). */
import { InvalidArgumentError, notFound, Violations } from '../../src/errors.js';
import type { UserRecord, UserStore } from '../../src/ports.js';
import { checkEmail, checkUuid } from '../../src/validation.js';

export type UserLookup = { by: 'id'; id: string } | { by: 'email'; email: string };

export interface UserDeps {
  users: UserStore;
}

export type UserService = ReturnType<typeof createUserService>;

export function createUserService({ users }: UserDeps) {
  return {
    async getUser(lookup: UserLookup | undefined): Promise<UserRecord> {
      if (!lookup)
        throw new InvalidArgumentError([{ field: 'lookup', description: 'set exactly one of id or email' }]);
      const v = new Violations();
      if (lookup.by === 'id') {
        checkUuid(v, 'id', lookup.id);
        v.throwIfAny();
        const user = await users.findById(lookup.id.toLowerCase());
        if (!user) throw notFound(`user ${lookup.id} not found`);
        return user;
      }
      const email = checkEmail(v, 'email', lookup.email);
      v.throwIfAny();
      const user = await users.findByEmail(email);
      if (!user) throw notFound('no user with this email');
      return user;
    },
  };
}
