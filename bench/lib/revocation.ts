/**
 * Revocation across two instances on one database: for each session, B is made to hold it in its
 * read cache (two ValidateTokens), two pollers on B call ValidateToken back to back, and A ends
 * the session (Logout). Measured: the time from Logout's answer on A to B's first `active: false`,
 * and every `active: true` B gave to a request sent more than `boundMs` after Logout's answer (must
 * be none); and ValidateToken on A right after its own Logout (must be inactive: never stale).
 */
import { connect } from '../../src/client.js';

export interface RevocationResult {
  trials: number;
  boundMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** `active: true` answers from B to requests sent later than boundMs after Logout returned. */
  lateTrue: number;
  /** Trials in which B never answered inactive within 5 s. */
  neverSeen: number;
  /** `active: true` answers from A right after its own Logout. */
  sameInstanceStale: number;
}

const quantile = (sorted: number[], q: number) =>
  sorted.length
    ? (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number)
    : Number.NaN;

export async function revocationTrials(
  aAddress: string,
  bAddress: string,
  pairs: { accessToken: string; refreshToken: string }[],
  serviceToken: string,
  boundMs = 50,
): Promise<RevocationResult> {
  // ValidateToken needs a service identity with tokens.introspect in production
  const a = connect(aAddress, { deadlineMs: 10_000, token: serviceToken });
  const b = connect(bAddress, { deadlineMs: 10_000, token: serviceToken });
  const latencies: number[] = [];
  let [lateTrue, neverSeen, sameInstanceStale] = [0, 0, 0];
  try {
    for (const pair of pairs) {
      const accessToken = pair.accessToken;
      await b.auth.validateToken({ accessToken });
      await b.auth.validateToken({ accessToken });
      let loggedOutAt = Number.POSITIVE_INFINITY;
      let firstInactive: number | undefined;
      const answers: { sent: number; active: boolean }[] = [];
      let done = false;
      const poll = async () => {
        while (!done) {
          const sent = performance.now();
          const { active } = await b.auth.validateToken({ accessToken });
          const received = performance.now();
          answers.push({ sent, active });
          if (!active && firstInactive === undefined && received >= loggedOutAt) firstInactive = received;
          // poll past the bound, so an answer that flips back to active would be seen
          if (firstInactive !== undefined && received > loggedOutAt + 2 * boundMs) done = true;
          if (received > loggedOutAt + 5_000) done = true;
        }
      };
      const pollers = [poll(), poll()];
      await a.auth.logout({ refreshToken: pair.refreshToken });
      loggedOutAt = performance.now();
      if ((await a.auth.validateToken({ accessToken })).active) sameInstanceStale++;
      await Promise.all(pollers);
      if (firstInactive === undefined) neverSeen++;
      else latencies.push(Math.max(0, firstInactive - loggedOutAt));
      lateTrue += answers.filter((x) => x.active && x.sent > loggedOutAt + boundMs).length;
    }
  } finally {
    a.close();
    b.close();
  }
  const sorted = [...latencies].sort((x, y) => x - y);
  return {
    trials: pairs.length,
    boundMs,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted.at(-1) ?? Number.NaN,
    lateTrue,
    neverSeen,
    sameInstanceStale,
  };
}
