-- The generation moves whenever an account changes, whoever changes it (a
-- proxy's admin commands, or the provider's own tools writing the tables),
-- and every running proxy hears of it at once: each move is announced on
-- the channel pec_proxy_accounts with the new generation as payload
-- (LISTEN/NOTIFY; a proxy whose listening connection drops polls the
-- counter instead). Touching an app password's last use is not a change.
-- The same as migrations/sqlite/0004_generation_triggers.sql, per statement.
CREATE FUNCTION pec_proxy_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'generation';
    RETURN NULL;
END
$$;

CREATE FUNCTION pec_proxy_announce_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pec_proxy_accounts', NEW.value::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER generation_announced AFTER UPDATE ON counters
    FOR EACH ROW WHEN (NEW.name = 'generation') EXECUTE FUNCTION pec_proxy_announce_generation();

CREATE TRIGGER mailboxes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mailboxes
    FOR EACH STATEMENT EXECUTE FUNCTION pec_proxy_bump_generation();
CREATE TRIGGER collaborators_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON collaborators
    FOR EACH STATEMENT EXECUTE FUNCTION pec_proxy_bump_generation();
CREATE TRIGGER app_passwords_changed
    AFTER INSERT OR DELETE OR TRUNCATE
    OR UPDATE OF mailbox, collaborator, label, hash, created_at, expires_at ON app_passwords
    FOR EACH STATEMENT EXECUTE FUNCTION pec_proxy_bump_generation();
