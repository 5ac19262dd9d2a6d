-- The generation moves whenever an account changes, whoever changes it (the
-- proxy's admin commands, or a tool writing the tables directly), so every
-- running proxy drops its cache and re-checks its live sessions. Touching
-- an app password's last use is not a change. SQLite's triggers are per
-- row; migrations/postgres/0004_generation_triggers.sql does the same per
-- statement and also wakes the other nodes (NOTIFY).
CREATE TRIGGER mailboxes_inserted AFTER INSERT ON mailboxes
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER mailboxes_updated AFTER UPDATE ON mailboxes
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER mailboxes_deleted AFTER DELETE ON mailboxes
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER collaborators_inserted AFTER INSERT ON collaborators
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER collaborators_updated AFTER UPDATE ON collaborators
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER collaborators_deleted AFTER DELETE ON collaborators
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER app_passwords_inserted AFTER INSERT ON app_passwords
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER app_passwords_updated
AFTER UPDATE OF mailbox, collaborator, label, hash, created_at, expires_at ON app_passwords
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER app_passwords_deleted AFTER DELETE ON app_passwords
BEGIN UPDATE counters SET value = value + 1 WHERE name = 'generation'; END;
