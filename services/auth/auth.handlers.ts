import { AuthServiceService } from '../../src/gen/connectsphere/auth/v1/auth.js';
import { requirePrincipal, type ServiceHandlers } from '../../src/grpc/adapter.js';
import { toTokenPair, toUserMessage } from '../../src/grpc/mappers.js';
import type { AuthService } from './auth.service.js';

export { AuthServiceService };

/** Methods callable without a bearer token (ChangePassword is the only one that needs it). */
export const AUTH_PUBLIC_METHODS = [
  AuthServiceService.register.path,
  AuthServiceService.login.path,
  AuthServiceService.refreshToken.path,
  AuthServiceService.logout.path,
  AuthServiceService.validateToken.path,
];

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
      const caller = requirePrincipal(ctx);
      const tokens = await auth.changePassword(
        caller,
        { currentPassword: req.currentPassword, newPassword: req.newPassword },
        ctx.signal,
      );
      return { tokens: toTokenPair(tokens) };
    },
  };
}
