import { type GetUserRequest, UserServiceService } from '../../src/gen/connectsphere/user/v1/user.js';
import { requirePrincipal, type ServiceHandlers } from '../../src/grpc/adapter.js';
import { toUserMessage } from '../../src/grpc/mappers.js';
import type { UserLookup, UserService } from './user.service.js';

export { UserServiceService };

const toLookup = (lookup: GetUserRequest['lookup']): UserLookup | undefined => {
  switch (lookup?.$case) {
    case 'id':
      return { by: 'id', id: lookup.value };
    case 'email':
      return { by: 'email', email: lookup.value };
    default:
      return undefined;
  }
};

/** GetUser checks its caller's session in the same statement as its read (one round trip). */
export const USER_DEFERRED_LIVENESS = [UserServiceService.getUser.path];

/** Every UserService method needs a bearer token (none is in the public list). */
export function createUserHandlers(users: UserService): ServiceHandlers<typeof UserServiceService> {
  return {
    async getUser(req, ctx) {
      const { sessionId, userId } = requirePrincipal(ctx);
      const user = await users.getUser(toLookup(req.lookup), { sessionId, userId }, ctx.signal);
      ctx.confirmLive(); // getUser read the caller's session in the same statement
      return toUserMessage(user);
    },
    async batchGetUsers(req) {
      return { users: (await users.batchGet(req.ids)).map(toUserMessage) };
    },
    async listUsers(req) {
      const page = await users.list({ pageSize: req.pageSize, pageToken: req.pageToken, query: req.query });
      return { users: page.users.map(toUserMessage), nextPageToken: page.nextPageToken };
    },
    async updateUser(req, ctx) {
      const user = req.user;
      const updated = await users.update(
        requirePrincipal(ctx),
        {
          id: user?.id ?? '',
          displayName: user?.displayName ?? '',
          email: user?.email ?? '',
          roles: user?.roles ?? [],
        },
        req.updateMask,
      );
      return toUserMessage(updated);
    },
    async deleteUser(req, ctx) {
      await users.remove(requirePrincipal(ctx), req.id);
      return {};
    },
  };
}
