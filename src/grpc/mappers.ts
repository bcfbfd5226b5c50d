/** Domain records → proto messages, shared by both services' handlers. */
import type { GetJwksResponse, Session, TokenPair } from '../gen/connectsphere/auth/v1/auth.js';
import type { AuditEvent, User } from '../gen/connectsphere/user/v1/user.js';
import type { AuditRecord, IssuedTokens, SessionInfo, UserView } from '../ports.js';

/** A full record, or a public profile with `email`, `roles` and `update_time` left unset. */
export const toUserMessage = (u: UserView): User => ({
  id: u.id,
  email: 'email' in u ? u.email : '',
  displayName: u.displayName,
  roles: 'roles' in u ? u.roles : [],
  createTime: u.createTime,
  updateTime: 'updateTime' in u ? u.updateTime : undefined,
});

export const toTokenPair = (t: IssuedTokens): TokenPair => ({
  accessToken: t.accessToken,
  tokenType: 'Bearer',
  expiresIn: t.expiresIn,
  refreshToken: t.refreshToken,
  refreshExpiresIn: t.refreshExpiresIn,
});

export const toSessionMessage = (s: SessionInfo & { current: boolean }): Session => ({
  id: s.id,
  createTime: s.createTime,
  lastRefreshTime: s.lastRefreshTime,
  clientAddress: s.clientAddress,
  userAgent: s.userAgent,
  current: s.current,
});

/** A JWK Set as the key ring makes it (RFC 7517 members, all optional strings). */
export interface JwkSet {
  keys: readonly {
    kty?: string;
    kid?: string;
    alg?: string;
    use?: string;
    crv?: string;
    x?: string;
    y?: string;
  }[];
}

export const toJwksMessage = (set: JwkSet): GetJwksResponse => ({
  keys: set.keys.map((k) => ({
    kty: k.kty ?? '',
    kid: k.kid ?? '',
    alg: k.alg ?? '',
    use: k.use ?? '',
    crv: k.crv ?? '',
    x: k.x ?? '',
    y: k.y ?? '',
  })),
});

export const toAuditEventMessage = (e: AuditRecord): AuditEvent => ({
  id: e.id,
  eventTime: e.time,
  eventType: e.type,
  actorType: e.actor.type,
  actorId: e.actor.type === 'anonymous' ? '' : e.actor.id,
  subjectUserId: e.subjectUserId ?? '',
  clientAddress: e.clientAddress ?? '',
  requestId: e.requestId ?? '',
  outcome: e.outcome,
  details: { ...e.details },
});
