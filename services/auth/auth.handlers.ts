import { AuthServiceService } from '../../src/gen/connectsphere/auth/v1/auth.js';
import type { ServiceHandlers } from '../../src/grpc/adapter.js';
import { toTokenPair, toUserMessage } from '../../src/grpc/mappers.js';
import type { AuthService } from './auth.service.js';

export { AuthServiceService };

/** Methods callable without a bearer token. */
export const AUTH_PUBLIC_METHODS = [AuthServiceService.register.path, AuthServiceService.login.path];

export function createAuthHandlers(auth: AuthService): ServiceHandlers<typeof AuthServiceService> {
  return {
    async register(req, ctx) {
      const { user, tokens } = await auth.register(
        { email: req.email, password: req.password, displayName: req.displayName },
        ctx.signal,
      );
      return { user: toUserMessage(user), tokens: toTokenPair(tokens) };
    },
    async login(req, ctx) {
      const { user, tokens } = await auth.login({ email: req.email, password: req.password }, ctx.signal);
      return { user: toUserMessage(user), tokens: toTokenPair(tokens) };
    },
  };
}
