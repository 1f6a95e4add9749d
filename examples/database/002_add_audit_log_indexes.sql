-- OC Pizza: indexes of ocpizza_audit_log for the usual lookups: the latest
-- entries, and the history of one object. Idempotent.
CREATE INDEX IF NOT EXISTS ocpizza_audit_log_occurred_at_idx
    ON ocpizza_audit_log (occurred_at);
CREATE INDEX IF NOT EXISTS ocpizza_audit_log_object_idx
    ON ocpizza_audit_log (object_type, object_id, occurred_at);
