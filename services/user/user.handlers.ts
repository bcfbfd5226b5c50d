import { type GetUserRequest, UserServiceService } from '../../src/gen/connectsphere/user/v1/user.js';
import type { ServiceHandlers } from '../../src/grpc/adapter.js';
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

export function createUserHandlers(users: UserService): ServiceHandlers<typeof UserServiceService> {
  return {
    async getUser(req) {
      return toUserMessage(await users.getUser(toLookup(req.lookup)));
    },
  };
}
