/**
 * The catalogue of what the bench can drive, shared by the runner and the load worker.
 *
 * An *op* is one kind of request (an RPC of the real server, or a ceiling operation: an echo RPC,
 * a raw `pg` query, a bcrypt compare). A *workload* is what one virtual user loops over: one op,
 * or the weighted `mixed` workload.
 */

export const SERVER_OPS = [
  'getUserById',
  'getUserByEmail',
  'batchGetUsers',
  'listUsers',
  'validateToken',
  'login',
  'register',
  'refreshToken',
] as const;
export type ServerOp = (typeof SERVER_OPS)[number];

export const CEILING_OPS = ['echo', 'pgPointSelect', 'pgConnectSelect', 'bcryptCompare'] as const;
export type CeilingOp = (typeof CEILING_OPS)[number];

export type Op = ServerOp | CeilingOp;
export type Workload = Op | 'mixed';

/**
 * The scenarios of the server, in the order the runner drives them: Login and Register come before
 * RefreshToken and mixed, because their answers are live sessions that those two need (one per
 * virtual user); reusing them saves ~0.25 s of bcrypt per session.
 */
export const SCENARIOS = [...SERVER_OPS, 'mixed'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Which ceiling a scenario is compared with. */
export type CeilingKind = 'echo' | 'bcrypt';

export interface ScenarioInfo {
  label: string;
  /** The RPC(s) it calls. */
  rpc: string;
  ceiling: CeilingKind;
  /** Concurrency at which a target is checked (always measured, also with --levels). */
  targetLevel?: number;
  /** The RPC is dominated by one bcrypt operation at BCRYPT_ROUNDS. */
  bcrypt?: boolean;
}

export const SCENARIO_INFO: Record<Scenario, ScenarioInfo> = {
  getUserById: { label: 'GetUser by id', rpc: 'UserService/GetUser {id}', ceiling: 'echo', targetLevel: 50 },
  getUserByEmail: { label: 'GetUser by email', rpc: 'UserService/GetUser {email}', ceiling: 'echo' },
  batchGetUsers: { label: 'BatchGetUsers (50 ids)', rpc: 'UserService/BatchGetUsers', ceiling: 'echo' },
  listUsers: { label: 'ListUsers (page of 50)', rpc: 'UserService/ListUsers', ceiling: 'echo' },
  validateToken: {
    label: 'ValidateToken',
    rpc: 'AuthService/ValidateToken',
    ceiling: 'echo',
    targetLevel: 50,
  },
  login: { label: 'Login', rpc: 'AuthService/Login', ceiling: 'bcrypt', targetLevel: 8, bcrypt: true },
  register: {
    label: 'Register',
    rpc: 'AuthService/Register',
    ceiling: 'bcrypt',
    targetLevel: 8,
    bcrypt: true,
  },
  refreshToken: { label: 'RefreshToken (rotation)', rpc: 'AuthService/RefreshToken', ceiling: 'echo' },
  mixed: { label: 'Mixed workload', rpc: 'every RPC above, weighted (MIX)', ceiling: 'echo' },
};

export const OP_LABEL: Record<Op, string> = {
  getUserById: 'GetUser(id)',
  getUserByEmail: 'GetUser(email)',
  batchGetUsers: 'BatchGetUsers',
  listUsers: 'ListUsers',
  validateToken: 'ValidateToken',
  login: 'Login',
  register: 'Register',
  refreshToken: 'RefreshToken',
  echo: 'echo RPC',
  pgPointSelect: 'pg point-select (pool)',
  pgConnectSelect: 'pg point-select (new connection)',
  bcryptCompare: 'bcrypt compare',
};

/**
 * The mixed workload, in requests per thousand: what an identity service sees in front of other
 * services (mostly token checks and profile reads, some refreshes, few password operations).
 * Login and Register are the ones that cost a bcrypt operation each.
 */
export const MIX: Readonly<Record<ServerOp, number>> = {
  validateToken: 400,
  getUserById: 300,
  getUserByEmail: 100,
  batchGetUsers: 50,
  listUsers: 50,
  refreshToken: 80,
  login: 15,
  register: 5,
};

/** Ops a workload may call. */
export function opsOf(workload: Workload): Op[] {
  return workload === 'mixed' ? (Object.keys(MIX) as ServerOp[]) : [workload];
}

/** Whether a workload needs one live refresh token (session) per virtual user. */
export const needsSessions = (workload: Workload): boolean =>
  workload === 'refreshToken' || workload === 'mixed';

/** Seeded users: `bench-user-<n>@bench.example.com`, n = 1..count, all with BENCH_PASSWORD. */
export const seededEmail = (n: number): string => `bench-user-${n}@bench.example.com`;
export const BENCH_PASSWORD = 'bench-password-1234';
export const BATCH_SIZE = 50;
export const PAGE_SIZE = 50;
