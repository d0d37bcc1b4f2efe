-- A key's active seat count, kept by a trigger so every writer (API, sweeper, `db` tools, a
-- hand-run INSERT) keeps it right. Counting rows instead made each activation scan all of
-- the key's seats: a cost that grew with the key. Every API path that changes a key's
-- activations already holds that key's row lock, so the trigger's UPDATE adds no new lock.
ALTER TABLE license_keys ADD COLUMN active_seats BIGINT NOT NULL DEFAULT 0;

UPDATE license_keys k SET active_seats = s.n
FROM (SELECT key_id, COUNT(*) AS n FROM activations WHERE deactivated_at IS NULL GROUP BY key_id) s
WHERE s.key_id = k.id;

CREATE FUNCTION tessera_track_active_seats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.deactivated_at IS NULL THEN
        UPDATE license_keys SET active_seats = active_seats - 1 WHERE id = OLD.key_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.deactivated_at IS NULL THEN
        UPDATE license_keys SET active_seats = active_seats + 1 WHERE id = NEW.key_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER activations_seat_taken AFTER INSERT ON activations
FOR EACH ROW WHEN (NEW.deactivated_at IS NULL)
EXECUTE FUNCTION tessera_track_active_seats();

CREATE TRIGGER activations_seat_removed AFTER DELETE ON activations
FOR EACH ROW WHEN (OLD.deactivated_at IS NULL)
EXECUTE FUNCTION tessera_track_active_seats();

-- Fires only when the seat actually changes hands or state (a refresh leaves it alone).
CREATE TRIGGER activations_seat_changed AFTER UPDATE OF deactivated_at, key_id ON activations
FOR EACH ROW WHEN ((OLD.deactivated_at IS NULL) <> (NEW.deactivated_at IS NULL) OR OLD.key_id <> NEW.key_id)
EXECUTE FUNCTION tessera_track_active_seats();
