import type { GetUserRequest, UserServiceService } from '../../src/gen/connectsphere/user/v1/user.js';
import type { ServiceHandlers } from '../../src/grpc/adapter.js';
import { toAuditEventMessage, toUserMessage } from '../../src/grpc/mappers.js';
import type { USER_POLICY } from '../../src/grpc/policy.js';
import type { UserLookup, UserService } from './user.service.js';

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

export function createUserHandlers(
  users: UserService,
): ServiceHandlers<typeof UserServiceService, typeof USER_POLICY> {
  return {
    async getUser(req, ctx) {
      const user = await users.getUser(toLookup(req.lookup), ctx.caller, ctx.signal);
      ctx.confirmLive(); // getUser read the caller's session in the same statement
      return toUserMessage(user);
    },
    async batchGetUsers(req, ctx) {
      return { users: (await users.batchGet(ctx.caller, req.ids)).map(toUserMessage) };
    },
    async listUsers(req, ctx) {
      const page = await users.list(ctx.caller, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        query: req.query,
      });
      return { users: page.users.map(toUserMessage), nextPageToken: page.nextPageToken };
    },
    async updateUser(req, ctx) {
      const user = req.user;
      const updated = await users.update(
        ctx.caller,
        {
          id: user?.id ?? '',
          displayName: user?.displayName ?? '',
          email: user?.email ?? '',
          roles: user?.roles ?? [],
          currentPassword: req.currentPassword,
        },
        req.updateMask,
        { signal: ctx.signal, source: ctx.clientSource, requestId: ctx.requestId },
      );
      return toUserMessage(updated);
    },
    async deleteUser(req, ctx) {
      await users.remove(ctx.caller, req.id, { clientAddress: ctx.clientAddress, requestId: ctx.requestId });
      return {};
    },
    async listAuditEvents(req, ctx) {
      const page = await users.listAudit(ctx.caller, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        subjectUserId: req.subjectUserId,
        eventTypes: req.eventTypes,
        startTime: req.startTime,
        endTime: req.endTime,
      });
      return { events: page.events.map(toAuditEventMessage), nextPageToken: page.nextPageToken };
    },
  };
}
