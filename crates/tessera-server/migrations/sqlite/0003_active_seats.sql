-- A key's active seat count, kept by triggers so every writer (API, sweeper, `db` tools, a
-- hand-run INSERT) keeps it right. Counting rows instead made each activation scan all of
-- the key's seats: a cost that grew with the key.
ALTER TABLE license_keys ADD COLUMN active_seats INTEGER NOT NULL DEFAULT 0;

UPDATE license_keys SET active_seats = (
    SELECT COUNT(*) FROM activations a
    WHERE a.key_id = license_keys.id AND a.deactivated_at IS NULL
);

CREATE TRIGGER IF NOT EXISTS activations_seat_taken AFTER INSERT ON activations
WHEN NEW.deactivated_at IS NULL
BEGIN
    UPDATE license_keys SET active_seats = active_seats + 1 WHERE id = NEW.key_id;
END;

CREATE TRIGGER IF NOT EXISTS activations_seat_removed AFTER DELETE ON activations
WHEN OLD.deactivated_at IS NULL
BEGIN
    UPDATE license_keys SET active_seats = active_seats - 1 WHERE id = OLD.key_id;
END;

-- Fires only when the seat actually changes hands or state (a refresh leaves it alone).
CREATE TRIGGER IF NOT EXISTS activations_seat_changed AFTER UPDATE OF deactivated_at, key_id ON activations
WHEN (OLD.deactivated_at IS NULL) != (NEW.deactivated_at IS NULL) OR OLD.key_id != NEW.key_id
BEGIN
    UPDATE license_keys SET active_seats = active_seats - 1
    WHERE id = OLD.key_id AND OLD.deactivated_at IS NULL;
    UPDATE license_keys SET active_seats = active_seats + 1
    WHERE id = NEW.key_id AND NEW.deactivated_at IS NULL;
END;
