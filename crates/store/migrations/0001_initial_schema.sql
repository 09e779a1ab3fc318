-- pledgesync: initial schema.
--
-- The constraints here are the last line of defence for the promises in design.md: the code above
-- them may be wrong, two replicas may race, a message may be forged — the database still refuses
-- a second active run per integration, an integration pointed at another account's audience, a
-- batch counted twice, or a member key that is not a normalised email.

-- Audiences belong to PledgeBox accounts; names are unique per account.
CREATE TABLE audiences (
    id          uuid        PRIMARY KEY,
    account_id  text        NOT NULL CHECK (account_id <> ''),
    name        text        NOT NULL CHECK (btrim(name) <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audiences_account_name_key UNIQUE (account_id, name),
    -- Target of integrations' composite foreign key: an integration can only map an audience of
    -- its own account.
    CONSTRAINT audiences_id_account_key UNIQUE (id, account_id)
);

-- A creator's connection of one Zoho org. Secrets are stored only as ciphertext made by the
-- caller (authenticated encryption, key id beside it for rotation): there is no plaintext column.
CREATE TABLE integrations (
    id                       uuid        PRIMARY KEY,
    account_id               text        NOT NULL CHECK (account_id <> ''),
    name                     text        NOT NULL CHECK (btrim(name) <> ''),
    data_center              text        NOT NULL CHECK (data_center IN ('US', 'EU', 'IN', 'AU', 'JP', 'CN', 'CA', 'SA')),
    api_domain               text        NOT NULL,
    client_id                text        NOT NULL,
    client_secret_ciphertext bytea       NOT NULL CHECK (octet_length(client_secret_ciphertext) > 0),
    refresh_token_ciphertext bytea       NOT NULL CHECK (octet_length(refresh_token_ciphertext) > 0),
    encryption_key_id        text        NOT NULL CHECK (encryption_key_id <> ''),
    scopes                   text[]      NOT NULL DEFAULT '{}',
    zoho_org_id              text        NOT NULL,
    zoho_org_name            text,
    zoho_time_zone           text,
    audience_id              uuid,
    status                   text        NOT NULL DEFAULT 'active'
                                         CHECK (status IN ('active', 'needs_reauth', 'disabled')),
    status_reason            text,
    modules                  text[]      NOT NULL DEFAULT '{Contacts,Leads}'
                                         CHECK (cardinality(modules) > 0 AND modules <@ '{Contacts,Leads}'::text[]),
    sync_interval_secs       integer     NOT NULL DEFAULT 3600 CHECK (sync_interval_secs >= 60),
    full_sync_interval_secs  integer     NOT NULL DEFAULT 604800 CHECK (full_sync_interval_secs >= 3600),
    next_sync_at             timestamptz NOT NULL DEFAULT now(),
    last_full_sync_at        timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    deleted_at               timestamptz,
    -- MATCH SIMPLE: a NULL audience_id (not mapped yet) is allowed; a set one must be an audience
    -- of the same account.
    CONSTRAINT integrations_audience_same_account_fkey
        FOREIGN KEY (audience_id, account_id) REFERENCES audiences (id, account_id),
    -- A deleted integration never runs again.
    CONSTRAINT integrations_deleted_is_disabled CHECK (deleted_at IS NULL OR status = 'disabled')
);
CREATE UNIQUE INDEX integrations_account_name_live_key ON integrations (account_id, name) WHERE deleted_at IS NULL;
CREATE INDEX integrations_by_account ON integrations (account_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX integrations_by_audience ON integrations (audience_id) WHERE audience_id IS NOT NULL;
-- The periodic scheduler's scan: only integrations that may run at all.
CREATE INDEX integrations_due ON integrations (next_sync_at)
    WHERE status = 'active' AND deleted_at IS NULL AND audience_id IS NOT NULL;

-- One sync run of an integration. The audience is fixed when the run is enqueued, so remapping
-- an integration mid-run never splits one run's records over two audiences.
CREATE TABLE sync_runs (
    id                uuid        PRIMARY KEY,
    integration_id    uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    audience_id       uuid        NOT NULL REFERENCES audiences (id),
    mode              text        NOT NULL CHECK (mode IN ('full', 'incremental')),
    trigger           text        NOT NULL CHECK (trigger IN ('manual', 'schedule')),
    status            text        NOT NULL DEFAULT 'queued'
                                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    error             text,
    total_estimate    bigint      CHECK (total_estimate >= 0),
    -- Opaque to the store: the fetcher's resume position.
    checkpoint        jsonb,
    -- Written only by the fetcher that holds the run's job, never by sinks.
    batches_published bigint      NOT NULL DEFAULT 0 CHECK (batches_published >= 0),
    batches_total     bigint      CHECK (batches_total >= 0),
    fetched           bigint      NOT NULL DEFAULT 0 CHECK (fetched >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    heartbeat_at      timestamptz,
    CONSTRAINT sync_runs_finished_has_time
        CHECK ((status IN ('queued', 'running')) = (finished_at IS NULL))
);
-- Promise 8: one active run per integration, enforced by the database.
CREATE UNIQUE INDEX sync_runs_one_active_per_integration ON sync_runs (integration_id)
    WHERE status IN ('queued', 'running');
CREATE INDEX sync_runs_by_integration ON sync_runs (integration_id, created_at DESC, id DESC);
CREATE INDEX sync_runs_running ON sync_runs (heartbeat_at) WHERE status = 'running';

-- Promise 1: the per-run ledger of applied batches. (run_id, seq) is the idempotency key; the
-- run's counters are sums over this table, so concurrent sinks never contend on the run row.
CREATE TABLE run_batches (
    run_id            uuid        NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    seq               bigint      NOT NULL CHECK (seq >= 0),
    module            text        NOT NULL CHECK (module IN ('Contacts', 'Leads')),
    kind              text        NOT NULL CHECK (kind IN ('upsert', 'delete')),
    records           integer     NOT NULL CHECK (records >= 0),
    applied           integer     NOT NULL DEFAULT 0 CHECK (applied >= 0),
    skipped           integer     NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    skipped_by_reason jsonb       NOT NULL DEFAULT '{}',
    deleted           integer     NOT NULL DEFAULT 0 CHECK (deleted >= 0),
    applied_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

-- The audience itself. The key is the normalised email, so a Lead converted into a Contact with
-- the same email stays one member. `origin` says who created the row: only rows a sync created
-- can be removed by a sync (promise 7); the PledgeBox app's rows default to 'external'.
CREATE TABLE audience_members (
    audience_id        uuid        NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    email              text        NOT NULL CHECK (email <> '' AND email = lower(btrim(email))),
    first_name         text,
    last_name          text,
    phone              text,
    country            text,
    unsubscribed       boolean     NOT NULL DEFAULT false,
    attributes         jsonb       NOT NULL DEFAULT '{}',
    -- Zoho's Modified_Time of the newest record applied (promise 3); NULL for rows from elsewhere.
    source_modified_at timestamptz,
    origin             text        NOT NULL DEFAULT 'external' CHECK (origin IN ('sync', 'external')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    removed_at         timestamptz,
    removed_reason     text,
    PRIMARY KEY (audience_id, email),
    CONSTRAINT audience_members_removed_has_reason CHECK ((removed_at IS NULL) = (removed_reason IS NULL))
);

-- Which Zoho record of which integration brought a member. A member stays while any live source
-- still has it.
CREATE TABLE member_sources (
    integration_id   uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    zoho_module      text        NOT NULL CHECK (zoho_module IN ('Contacts', 'Leads')),
    zoho_id          text        NOT NULL CHECK (zoho_id ~ '^[0-9]{1,32}$'),
    audience_id      uuid        NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    email            text        NOT NULL CHECK (email <> '' AND email = lower(btrim(email))),
    -- Zoho's Modified_Time of the newest version of the record applied.
    modified_at      timestamptz,
    -- The last run that saw the record; a full run's unseen sources are deletion candidates.
    last_seen_run_id uuid,
    removed_at       timestamptz,
    removed_reason   text,
    -- Zoho's deleted_time when the removal came from the deleted-records API: an older version
    -- of the record arriving later must not bring it back.
    zoho_deleted_at  timestamptz,
    PRIMARY KEY (integration_id, zoho_module, zoho_id),
    CONSTRAINT member_sources_removed_has_reason CHECK ((removed_at IS NULL) = (removed_reason IS NULL))
);
CREATE INDEX member_sources_by_member ON member_sources (audience_id, email) WHERE removed_at IS NULL;

-- Per-module incremental cursors, advanced only when a run succeeds and only forward.
CREATE TABLE sync_cursors (
    integration_id uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    module         text        NOT NULL CHECK (module IN ('Contacts', 'Leads')),
    modified_since timestamptz,
    deleted_since  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, module)
);

-- Cursor positions a run reached, staged by the fetcher and promoted into sync_cursors by the
-- same statement that marks the run succeeded (whoever completes it: a sink or the fetcher).
CREATE TABLE run_cursors (
    run_id         uuid        NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    module         text        NOT NULL CHECK (module IN ('Contacts', 'Leads')),
    modified_since timestamptz,
    deleted_since  timestamptz,
    PRIMARY KEY (run_id, module)
);

-- Transactional outbox: a run and its first job are written in one transaction; a relay publishes
-- the job with a confirm and marks it published.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    run_id       uuid        REFERENCES sync_runs (id) ON DELETE CASCADE,
    queue        text        NOT NULL CHECK (queue <> ''),
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX outbox_by_run ON outbox (run_id) WHERE run_id IS NOT NULL;
