/**
 * Re-authentication with the current password (ChangePassword, a user's own email change): one
 * attempt is reserved against the user's key before the compare, so wrong guesses are limited like
 * logins (LOGIN_MAX_FAILURES, then the doubling lockout), and a locked user is refused even with
 * the right password until the lock ends.
 */
import { throttled, unauthenticated } from '../errors.js';
import type { AttemptThrottle } from '../ports.js';
import { attemptSignal } from '../throttle.js';
import type { RunOptions } from './limiter.js';
import type { PasswordHasher } from './passwords.js';

export type CurrentPasswordCheck = (
  account: { id: string; passwordHash: string },
  password: string,
  options: RunOptions,
) => Promise<void>;

export function createCurrentPasswordCheck(deps: {
  throttle: AttemptThrottle;
  hasher: PasswordHasher;
  maxFailures: number;
}): CurrentPasswordCheck {
  const { throttle, hasher, maxFailures } = deps;
  return async (account, password, options) => {
    const key = { key: `user:${account.id}`, max: maxFailures };
    const reservation = await throttle.reserve([key], options.signal);
    if (!reservation.granted) throw throttled(reservation.waitS);
    const { ticket } = reservation;
    let ok: boolean;
    try {
      ok = await hasher.verify(password, account.passwordHash, {
        ...options,
        signal: attemptSignal(options.signal),
      });
    } catch (err) {
      await throttle.settle(ticket, { result: 'void' }).catch(() => {}); // never evaluated
      throw err;
    }
    if (!ok) {
      await throttle.settle(ticket, { result: 'failure' });
      throw unauthenticated('current_password is incorrect');
    }
    await throttle.settle(ticket, { result: 'success', clear: [key] });
  };
}
