-- One row per run of a job. This is the hot, large table: it is written on every trigger and
-- every state change, and read by "latest runs of a job" and "runs by status".
--
-- Not partitioned on purpose: a UNIQUE idempotency key on a partitioned table must include the
-- partition column, which would stop it from guarding "one execution per fire" across
-- partitions. Retention deletes in bounded batches along the created_at index instead.
CREATE TABLE executions (
    id               uuid PRIMARY KEY,
    job_id           text        NOT NULL,
    -- cron:<job>:<scheduled UTC>, webhook:<job>:<delivery id>; NULL for manual runs and replays.
    -- Webhook keys are cleared after DEDUPE_WINDOW_HOURS so a late redelivery runs again.
    idempotency_key  text UNIQUE,
    trigger          text        NOT NULL CHECK (trigger IN ('cron', 'webhook', 'manual', 'replay')),
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN (
                         'pending', 'queued', 'running', 'retrying',
                         'succeeded', 'failed', 'timed_out', 'skipped', 'cancelled')),
    status_reason    text,
    scheduled_at     timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    enqueued_at      timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    next_attempt_at  timestamptz,
    attempts         integer     NOT NULL DEFAULT 0,
    job_snapshot     jsonb       NOT NULL,
    payload          jsonb,
    result           jsonb,
    error            text,
    replay_of        uuid,
    cancel_requested boolean     NOT NULL DEFAULT false
);

CREATE INDEX executions_job_latest ON executions (job_id, created_at DESC, id DESC);
CREATE INDEX executions_status_latest ON executions (status, created_at DESC, id DESC);
CREATE INDEX executions_created ON executions (created_at, id);
-- The repair loop and the dashboards look only at live rows; keep that index small.
CREATE INDEX executions_live ON executions (status, created_at)
    WHERE status IN ('pending', 'queued', 'running', 'retrying');
