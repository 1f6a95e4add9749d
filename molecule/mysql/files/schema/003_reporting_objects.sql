-- Objects a dump must carry besides tables: a view, a trigger, a stored
-- procedure (written with DELIMITER, as in a terminal) and an event.
CREATE VIEW audit_log_recent AS
    SELECT id, happened_at, actor, action FROM audit_log
    WHERE happened_at > NOW() - INTERVAL 30 DAY;

CREATE TRIGGER audit_log_actor_lower BEFORE INSERT ON audit_log
    FOR EACH ROW SET NEW.actor = LOWER(NEW.actor);

DELIMITER //
CREATE PROCEDURE audit_log_purge(IN keep_days INT)
BEGIN
    DELETE FROM audit_log WHERE happened_at < NOW() - INTERVAL keep_days DAY;
    SELECT ROW_COUNT() AS purged;
END//
DELIMITER ;

CREATE EVENT audit_log_nightly_purge ON SCHEDULE EVERY 1 DAY
    DO CALL audit_log_purge(365);
