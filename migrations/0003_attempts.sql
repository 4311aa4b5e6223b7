-- One row per delivery attempt of an execution.
CREATE TABLE attempts (
    execution_id   uuid        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    attempt        integer     NOT NULL CHECK (attempt >= 1),
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    duration_ms    double precision,
    outcome        text CHECK (outcome IN ('succeeded', 'failed', 'retryable', 'timed_out', 'cancelled')),
    status_code    integer,
    error_class    text,
    error_message  text,
    response       text,
    PRIMARY KEY (execution_id, attempt)
);
