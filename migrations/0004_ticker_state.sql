-- The last cron fire the ticker created for each job. A restarted ticker, or a replica that
-- takes over from a dead leader, reads it to know which fire times went by unfired and applies
-- the job's misfire policy to them. Deleting a job forgets it, so a job re-created under the
-- same id starts fresh.
CREATE TABLE schedule_state (
    job_id             text PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    last_scheduled_at  timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Housekeeping expires webhook dedupe keys by age; keep that scan to the rows that still
-- hold a key.
CREATE INDEX executions_webhook_keys ON executions (created_at)
    WHERE trigger = 'webhook' AND idempotency_key IS NOT NULL;
