-- Sessions the proxy ended because their access was revoked (a
-- collaborator suspended, an app password revoked, a protocol switched
-- off...) are recorded beside the logins they ended: result 'revoked',
-- reason the revocation's label. A CHECK cannot be altered in SQLite: the
-- table is rebuilt (plain SQL, the same on PostgreSQL).
CREATE TABLE access_log_new (
    at           BIGINT NOT NULL,
    mailbox      TEXT NOT NULL,
    collaborator TEXT,
    protocol     TEXT NOT NULL,
    client_ip    TEXT NOT NULL,
    client_name  TEXT,
    result       TEXT NOT NULL CHECK (result IN ('success', 'failure', 'revoked')),
    reason       TEXT,                          -- a deny or revoke reason label; NULL on success
    new_device   BOOLEAN NOT NULL
);
INSERT INTO access_log_new
    (at, mailbox, collaborator, protocol, client_ip, client_name, result, reason, new_device)
    SELECT at, mailbox, collaborator, protocol, client_ip, client_name, result, reason, new_device
    FROM access_log;
DROP TABLE access_log;
ALTER TABLE access_log_new RENAME TO access_log;
CREATE INDEX access_log_mailbox_at ON access_log (mailbox, at);
CREATE INDEX access_log_at ON access_log (at);
