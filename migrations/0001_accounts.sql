-- pec-proxy account store, version 1.
-- Portable SQL: runs unchanged on SQLite (>= 3.35) and PostgreSQL.
-- Times are unix seconds in BIGINT (INTEGER affinity in SQLite, 64-bit in
-- PostgreSQL, where INTEGER would overflow in 2038). Booleans are BOOLEAN.
-- No password is ever stored in clear: only PHC / crypt hash strings.

-- Named counters, bumped with UPDATE ... RETURNING (both engines):
--   generation       bumped by every account change; running proxies poll
--                    it to drop their cache (access-log writes don't bump it)
--   app_password_id  the id of the next app password (portable, unlike
--                    AUTOINCREMENT / IDENTITY)
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('generation', 0);
INSERT INTO counters (name, value) VALUES ('app_password_id', 0);

CREATE TABLE mailboxes (
    address       TEXT PRIMARY KEY,            -- canonical lower-case local@domain
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash TEXT,                         -- NULL: no main password yet
    imap          BOOLEAN NOT NULL DEFAULT TRUE,
    pop3          BOOLEAN NOT NULL DEFAULT TRUE,
    smtp          BOOLEAN NOT NULL DEFAULT TRUE,
    two_step      BOOLEAN NOT NULL DEFAULT FALSE,
    pop3_delete   TEXT NOT NULL DEFAULT 'allow' CHECK (pop3_delete IN ('allow', 'deny')),
    route         TEXT,                         -- upstream route override
    created_at    BIGINT NOT NULL
);

CREATE TABLE collaborators (
    mailbox       TEXT NOT NULL REFERENCES mailboxes (address) ON DELETE CASCADE,
    name          TEXT NOT NULL,                -- lower case, as in name/mailbox@domain
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash TEXT,
    may_read      BOOLEAN NOT NULL DEFAULT FALSE,
    may_write     BOOLEAN NOT NULL DEFAULT FALSE,
    may_send      BOOLEAN NOT NULL DEFAULT FALSE,
    mail_client   BOOLEAN NOT NULL DEFAULT FALSE,
    pop3_delete   TEXT NOT NULL DEFAULT 'allow' CHECK (pop3_delete IN ('allow', 'deny')),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (mailbox, name)
);

CREATE TABLE app_passwords (
    id           BIGINT PRIMARY KEY,
    mailbox      TEXT NOT NULL REFERENCES mailboxes (address) ON DELETE CASCADE,
    collaborator TEXT,                          -- NULL: the owner's
    label        TEXT NOT NULL,
    hash         TEXT NOT NULL,                 -- argon2id of the normalised letters
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,                        -- NULL: never
    last_used_at BIGINT,
    -- MATCH SIMPLE (the default in both): not checked when collaborator is NULL.
    FOREIGN KEY (mailbox, collaborator) REFERENCES collaborators (mailbox, name) ON DELETE CASCADE
);
CREATE INDEX app_passwords_mailbox ON app_passwords (mailbox);

-- One row per login attempt. No foreign key: attempts on unknown mailboxes
-- are kept too (they are what an attack looks like), until retention.
CREATE TABLE access_log (
    at           BIGINT NOT NULL,
    mailbox      TEXT NOT NULL,
    collaborator TEXT,
    protocol     TEXT NOT NULL,
    client_ip    TEXT NOT NULL,
    client_name  TEXT,
    result       TEXT NOT NULL CHECK (result IN ('success', 'failure')),
    reason       TEXT,                          -- a deny reason label; NULL on success
    new_device   BOOLEAN NOT NULL
);
CREATE INDEX access_log_mailbox_at ON access_log (mailbox, at);
CREATE INDEX access_log_at ON access_log (at);

-- Client IPs and client names seen in successful logins, per principal,
-- for the access log's "new device" flag. collaborator '' is the owner.
CREATE TABLE known_devices (
    mailbox      TEXT NOT NULL REFERENCES mailboxes (address) ON DELETE CASCADE,
    collaborator TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('ip', 'name')),
    value        TEXT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    PRIMARY KEY (mailbox, collaborator, kind, value)
);
