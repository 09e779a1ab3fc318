-- pledgesync: a new integration does not sync on its own.
--
-- The setup guide ends with the creator pressing Sync Now; only after that do syncs run on a
-- schedule. `next_sync_at` is therefore NULL until the integration's first run is enqueued (the
-- enqueue sets it one interval ahead), and the periodic scheduler never claims a NULL.

ALTER TABLE integrations
    ALTER COLUMN next_sync_at DROP DEFAULT,
    ALTER COLUMN next_sync_at DROP NOT NULL;

-- Integrations that never had a run wait for their first Sync Now too, like new ones.
UPDATE integrations i SET next_sync_at = NULL
WHERE NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.integration_id = i.id);
