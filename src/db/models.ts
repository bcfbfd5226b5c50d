/**
 * The schema, as Sequelize models. They define the tables and indexes that `sync()` creates at
 * server start; repositories query them with explicit SQL for speed and clarity.
 */
import { DataTypes, type Sequelize } from 'sequelize';

export function defineModels(sequelize: Sequelize): void {
  sequelize.define(
    'User',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      // Stored normalised (trimmed, lower-case): the unique index below is the only duplicate check.
      email: { type: DataTypes.TEXT, allowNull: false },
      passwordHash: { type: DataTypes.TEXT, allowNull: false },
      displayName: { type: DataTypes.TEXT, allowNull: false },
      roles: { type: DataTypes.ARRAY(DataTypes.TEXT), allowNull: false, defaultValue: ['user'] },
      createdAt: { type: DataTypes.DATE, allowNull: false, defaultValue: DataTypes.NOW },
      updatedAt: { type: DataTypes.DATE, allowNull: false, defaultValue: DataTypes.NOW },
      deletedAt: { type: DataTypes.DATE, allowNull: true },
    },
    {
      tableName: 'users',
      underscored: true,
      timestamps: true,
      paranoid: true,
      indexes: [
        // One active account per address; a soft-deleted one frees it for registration again.
        { name: 'users_email_active_key', unique: true, fields: ['email'], where: { deleted_at: null } },
        // ListUsers' keyset order
        { name: 'users_created_id_idx', fields: ['created_at', 'id'], where: { deleted_at: null } },
      ],
    },
  );

  sequelize.define(
    'Session',
    {
      id: { type: DataTypes.UUID, primaryKey: true },
      userId: {
        type: DataTypes.UUID,
        allowNull: false,
        references: { model: 'users', key: 'id' },
        onDelete: 'CASCADE',
      },
      createdAt: { type: DataTypes.DATE, allowNull: false, defaultValue: DataTypes.NOW },
      // When its refresh token was last rotated (ListSessions).
      lastRefreshAt: { type: DataTypes.DATE, allowNull: true },
      // Where and with what the session started (ListSessions); the client address per TRUSTED_PROXIES.
      clientAddress: { type: DataTypes.TEXT, allowNull: true },
      userAgent: { type: DataTypes.TEXT, allowNull: true },
      revokedAt: { type: DataTypes.DATE, allowNull: true },
      revokeReason: { type: DataTypes.TEXT, allowNull: true },
    },
    {
      tableName: 'sessions',
      underscored: true,
      timestamps: false,
      indexes: [{ name: 'sessions_user_live_idx', fields: ['user_id'], where: { revoked_at: null } }],
    },
  );

  sequelize.define(
    'RefreshToken',
    {
      // SHA-256 of the token, hex: the token itself is never stored.
      tokenHash: { type: DataTypes.TEXT, primaryKey: true },
      sessionId: {
        type: DataTypes.UUID,
        allowNull: false,
        references: { model: 'sessions', key: 'id' },
        onDelete: 'CASCADE',
      },
      createdAt: { type: DataTypes.DATE, allowNull: false, defaultValue: DataTypes.NOW },
      expiresAt: { type: DataTypes.DATE, allowNull: false },
      usedAt: { type: DataTypes.DATE, allowNull: true },
      // The token this one replaced (null for a session's first): finds the successor of a token
      // presented again within REFRESH_REUSE_GRACE_SECONDS.
      parentHash: { type: DataTypes.TEXT, allowNull: true },
    },
    {
      tableName: 'refresh_tokens',
      underscored: true,
      timestamps: false,
      indexes: [{ name: 'refresh_tokens_session_parent_idx', fields: ['session_id', 'parent_hash'] }],
    },
  );

  // Service accounts: other services' identities. Only hashes of their secrets are stored (SHA-256:
  // a 256-bit random secret needs no slow hash); the previous one keeps working until it expires.
  sequelize.define(
    'ServiceAccount',
    {
      id: { type: DataTypes.UUID, primaryKey: true },
      name: { type: DataTypes.TEXT, allowNull: false },
      clientId: { type: DataTypes.TEXT, allowNull: false, unique: 'service_accounts_client_id_key' },
      secretHash: { type: DataTypes.TEXT, allowNull: false },
      previousSecretHash: { type: DataTypes.TEXT, allowNull: true },
      previousSecretExpiresAt: { type: DataTypes.DATE, allowNull: true },
      scopes: { type: DataTypes.ARRAY(DataTypes.TEXT), allowNull: false },
      certName: { type: DataTypes.TEXT, allowNull: true },
      createdAt: { type: DataTypes.DATE, allowNull: false, defaultValue: DataTypes.NOW },
      rotatedAt: { type: DataTypes.DATE, allowNull: true },
      deletedAt: { type: DataTypes.DATE, allowNull: true },
    },
    {
      tableName: 'service_accounts',
      underscored: true,
      timestamps: false,
      indexes: [
        {
          name: 'service_accounts_name_active_key',
          unique: true,
          fields: ['name'],
          where: { deleted_at: null },
        },
      ],
    },
  );

  // Attempt counters (failed logins by account, address and pair; wrong current passwords by user):
  // in the database, so every server instance enforces the same limits. See src/throttle.ts.
  sequelize.define(
    'LoginThrottle',
    {
      key: { type: DataTypes.TEXT, primaryKey: true },
      failures: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
      lastFailureAt: { type: DataTypes.DATE, allowNull: false, defaultValue: DataTypes.NOW },
      lockedUntil: { type: DataTypes.DATE, allowNull: true },
    },
    { tableName: 'login_throttle', underscored: true, timestamps: false },
  );
}

/**
 * Indexes Sequelize's index options cannot express (an operator class on an expression), created
 * by `sync()` after the tables: ListUsers' case-insensitive prefix search on email or display name.
 * text_pattern_ops makes `LIKE 'prefix%'` use the index under any collation.
 */
export const EXTRA_INDEXES_SQL = [
  `CREATE INDEX IF NOT EXISTS users_email_prefix_idx ON users (email text_pattern_ops)
     WHERE deleted_at IS NULL`,
  `CREATE INDEX IF NOT EXISTS users_display_name_prefix_idx ON users (lower(display_name) text_pattern_ops)
     WHERE deleted_at IS NULL`,
];
