-- Applied once: a second application would add a second row.
INSERT INTO audit_log (actor, action) VALUES ('schema', 'créé — pizza 🍕');
