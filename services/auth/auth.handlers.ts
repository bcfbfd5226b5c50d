import type { AuthServiceService } from '../../src/gen/connectsphere/auth/v1/auth.js';
import type { ServiceHandlers } from '../../src/grpc/adapter.js';
import { toTokenPair, toUserMessage } from '../../src/grpc/mappers.js';
import type { AUTH_POLICY } from '../../src/grpc/policy.js';
import type { AuthService } from './auth.service.js';

export function createAuthHandlers(
  auth: AuthService,
): ServiceHandlers<typeof AuthServiceService, typeof AUTH_POLICY> {
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
    async refreshToken(req) {
      return { tokens: toTokenPair(await auth.refresh(req.refreshToken)) };
    },
    async logout(req) {
      await auth.logout(req.refreshToken);
      return {};
    },
    async validateToken(req, ctx) {
      const t = await auth.validate(req.accessToken, ctx.signal);
      return {
        active: t.active,
        userId: t.userId ?? '',
        email: t.email ?? '',
        roles: t.roles ?? [],
        sessionId: t.sessionId ?? '',
        expireTime: t.expireTime,
      };
    },
    async changePassword(req, ctx) {
      const tokens = await auth.changePassword(
        ctx.caller,
        { currentPassword: req.currentPassword, newPassword: req.newPassword },
        ctx.signal,
      );
      return { tokens: toTokenPair(tokens) };
    },
  };
}
