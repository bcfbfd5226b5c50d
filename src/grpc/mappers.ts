/** Domain records → proto messages, shared by both services' handlers. */
import type { TokenPair } from '../gen/connectsphere/auth/v1/auth.js';
import type { User } from '../gen/connectsphere/user/v1/user.js';
import type { IssuedTokens, UserRecord } from '../ports.js';

export const toUserMessage = (u: UserRecord): User => ({
  id: u.id,
  email: u.email,
  displayName: u.displayName,
  roles: u.roles,
  createTime: u.createTime,
  updateTime: u.updateTime,
});

export const toTokenPair = (t: IssuedTokens): TokenPair => ({
  accessToken: t.accessToken,
  tokenType: 'Bearer',
  expiresIn: t.expiresIn,
  refreshToken: t.refreshToken,
  refreshExpiresIn: t.refreshExpiresIn,
});
