-- What the proxies of a fleet counted (failed and successful logins for the
-- brute-force penalty, messages sent for the sending rate), so that every
-- node counts what every other did: each node inserts its own events and
-- announces them (PostgreSQL NOTIFY); a node that missed some (just started,
-- or cut off from the database) reads them back from here. Only hashes
-- keyed with the fleet's shared secret and times, never a name or a
-- password. Rows older than the longest penalty window are deleted.
-- Created on SQLite too, unused there: one schema for both backends.
CREATE TABLE counter_events (
    node   BIGINT NOT NULL,                     -- random id of the proxy process
    seq    BIGINT NOT NULL,                     -- that process's sequence number
    at_ms  BIGINT NOT NULL,                     -- unix milliseconds
    event  TEXT NOT NULL,                       -- CounterEvent::encode
    PRIMARY KEY (node, seq)
);
CREATE INDEX counter_events_at ON counter_events (at_ms);
