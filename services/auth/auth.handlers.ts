import type { AuthServiceService } from '../../src/gen/connectsphere/auth/v1/auth.js';
import type { ServiceHandlers } from '../../src/grpc/adapter.js';
import type { PublicContext } from '../../src/grpc/context.js';
import {
  type JwkSet,
  toJwksMessage,
  toSessionMessage,
  toTokenPair,
  toUserMessage,
} from '../../src/grpc/mappers.js';
import type { AUTH_POLICY } from '../../src/grpc/policy.js';
import type { AuthService, Origin } from './auth.service.js';
import type { ServiceTokenIssuer } from './service-accounts.service.js';

const originOf = (ctx: PublicContext): Origin => ({
  clientAddress: ctx.clientAddress,
  source: ctx.clientSource,
  userAgent: ctx.userAgent,
  requestId: ctx.requestId,
  signal: ctx.signal,
});

export function createAuthHandlers(
  auth: AuthService,
  serviceTokens: ServiceTokenIssuer,
  jwks: () => JwkSet,
): ServiceHandlers<typeof AuthServiceService, typeof AUTH_POLICY> {
  return {
    async register(req, ctx) {
      const { user, tokens } = await auth.register(
        { email: req.email, password: req.password, displayName: req.displayName },
        originOf(ctx),
      );
      return { user: toUserMessage(user), tokens: toTokenPair(tokens) };
    },
    async login(req, ctx) {
      const { user, tokens } = await auth.login({ email: req.email, password: req.password }, originOf(ctx));
      return { user: toUserMessage(user), tokens: toTokenPair(tokens) };
    },
    async refreshToken(req, ctx) {
      return { tokens: toTokenPair(await auth.refresh(req.refreshToken, originOf(ctx))) };
    },
    async logout(req, ctx) {
      await auth.logout(req.refreshToken, originOf(ctx));
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
        tokenUse: t.tokenUse ?? '',
        serviceAccount: t.serviceAccount ?? '',
        scopes: t.scopes ?? [],
      };
    },
    async changePassword(req, ctx) {
      const tokens = await auth.changePassword(
        ctx.caller,
        { currentPassword: req.currentPassword, newPassword: req.newPassword },
        originOf(ctx),
      );
      return { tokens: toTokenPair(tokens) };
    },
    async listSessions(_req, ctx) {
      return { sessions: (await auth.listSessions(ctx.caller)).map(toSessionMessage) };
    },
    async revokeSession(req, ctx) {
      await auth.revokeSession(ctx.caller, req.sessionId, originOf(ctx));
      return {};
    },
    async issueServiceToken(req, ctx) {
      return serviceTokens.issueToken(
        { clientId: req.clientId, clientSecret: req.clientSecret },
        originOf(ctx),
      );
    },
    async getJwks() {
      return toJwksMessage(jwks());
    },
  };
}
