-- OC Pizza: audit log of changes made outside the web application (batch
-- jobs, operators' scripts). Independent of Django's tables.
-- Idempotent: applying it again changes nothing.
CREATE TABLE IF NOT EXISTS ocpizza_audit_log (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    occurred_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    actor VARCHAR(150) NOT NULL,
    action VARCHAR(32) NOT NULL,
    object_type VARCHAR(64) NOT NULL,
    object_id VARCHAR(64) NOT NULL,
    details JSON NULL,
    PRIMARY KEY (id),
    CONSTRAINT ocpizza_audit_log_action_chk
        CHECK (action IN ('create', 'update', 'delete', 'import', 'export'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
