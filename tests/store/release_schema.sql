CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    route TEXT NOT NULL,
    peer TEXT NOT NULL,
    sending_application TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    control_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    content_hash BLOB NOT NULL,
    size INTEGER NOT NULL,
    raw BLOB NOT NULL,
    ack BLOB NOT NULL,
    status TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_sender_key
    ON messages (route, sending_application, sending_facility, control_id);
CREATE INDEX IF NOT EXISTS messages_to_route ON messages (id) WHERE status = 'received';

CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    route TEXT NOT NULL,
    destination TEXT NOT NULL,
    payload BLOB,
    patient_key TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    last_ack_code TEXT,
    updated_at REAL NOT NULL,
    delivered_at REAL,
    resend_of INTEGER  -- the entry an operator resent as this one
);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (route, destination, status, id);
-- Open entries only, so `queue status` reads what is queued, not the whole history.
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (route, destination, status, id)
    WHERE status IN ('pending', 'parked');
CREATE INDEX IF NOT EXISTS outbox_message ON outbox (message_id);

-- Every step's decision about a message, in the order taken (destination '' = a route step).
CREATE TABLE IF NOT EXISTS step_decisions (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recorded_at REAL NOT NULL,
    destination TEXT NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS step_decisions_message ON step_decisions (message_id);
CREATE INDEX IF NOT EXISTS messages_dropped ON messages (route, id) WHERE status = 'dropped';

-- Who did or saw what in the console (kept beyond message retention).
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- Metric counters saved at intervals and at shutdown, restored at start.
CREATE TABLE IF NOT EXISTS metric_counters (
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (name, labels)
);

-- One row, rewritten by each readiness check: proof that the store still takes writes.
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS operator_actions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    entry_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operator_actions_entry ON operator_actions (entry_id);

-- Failed delivery attempts, for `queue list --control-id` (a delivery's success is in
-- outbox: delivered_at, last_ack_code), so the delivered path writes nothing more.
CREATE TABLE IF NOT EXISTS delivery_failures (
    id INTEGER PRIMARY KEY,
    entry_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    error TEXT NOT NULL,
    parked INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_failures_entry ON delivery_failures (entry_id);
-- `queue list --control-id`: one message among millions without a scan of their bytes.
CREATE INDEX IF NOT EXISTS messages_control_id ON messages (control_id);

-- What the running engine knows and another process shows (e.g. INSi's breaker for
-- `queue status`): one row per component, written when its state changes.
CREATE TABLE IF NOT EXISTS engine_state (
    name TEXT PRIMARY KEY,
    updated_at REAL NOT NULL,
    payload TEXT NOT NULL
);

-- The INS enrichment step's tables (its store extension), as that release created them.
CREATE TABLE IF NOT EXISTS identity_outcomes (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    recorded_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS insi_cache (
    key TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    expires_at REAL NOT NULL
);
PRAGMA user_version = 1;
