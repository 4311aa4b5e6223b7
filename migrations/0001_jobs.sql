-- Job definitions. `spec` is the validated definition exactly as applied (secret references
-- unresolved); `paused` is operational state that re-applying a file does not touch.
CREATE TABLE jobs (
    id          text PRIMARY KEY,
    spec        jsonb       NOT NULL,
    schedule    text,
    enabled     boolean     NOT NULL DEFAULT true,
    paused      boolean     NOT NULL DEFAULT false,
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every change to the jobs table is announced, so a running ticker reloads without a restart.
CREATE FUNCTION chronos_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chronos_jobs', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify
    AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION chronos_jobs_notify();
