-- pledgesync: member_sources takes the same guarantees at a lower cost per row.
--
-- A sink writes one member_sources row per record, so every per-row cost of this table is paid
-- 200 times a batch. A profile of a 200,000-record sync put a fifth of PostgreSQL's time in the
-- foreign-key triggers (each one a separate locking lookup with its own executor start, per row
-- and per key) and a twelfth in the regular expression of the zoho_id check.
--
-- 1. The two foreign keys become one check per transaction and two cascade triggers:
--    - every write of member_sources comes from the sink's apply transaction, which first reads
--      the batch's run and integration and now holds them `FOR KEY SHARE` (the lock a foreign
--      key would take, once instead of per row). The run references the audience, and neither
--      the run nor the integration can go while the transaction holds them, so the audience
--      cannot either: the rows written always point at an integration and an audience that exist.
--    - deleting an integration or an audience still deletes its sources, by the triggers below.
--      An audience's cascade finds its removed sources by a scan, as the foreign key's did (no
--      index leads with audience_id alone, and one would cost every insert for a rare delete).
-- 2. zoho_id keeps the same rule (1 to 32 ASCII digits) checked with string functions instead of
--    a regular expression, and compares bytewise (COLLATE "C"): the ids are digit strings, their
--    order carries no language, and the sink already sorts and locks them in byte order.

ALTER TABLE member_sources
    DROP CONSTRAINT member_sources_integration_id_fkey,
    DROP CONSTRAINT member_sources_audience_id_fkey,
    DROP CONSTRAINT member_sources_zoho_id_check;

ALTER TABLE member_sources
    ALTER COLUMN zoho_id TYPE text COLLATE "C",
    ADD CONSTRAINT member_sources_zoho_id_check
        CHECK (octet_length(zoho_id) BETWEEN 1 AND 32 AND ltrim(zoho_id, '0123456789') = '');

CREATE FUNCTION member_sources_cascade_from_integrations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM member_sources s USING gone g WHERE s.integration_id = g.id;
    RETURN NULL;
END;
$$;

CREATE FUNCTION member_sources_cascade_from_audiences() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM member_sources s USING gone g WHERE s.audience_id = g.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER member_sources_cascade AFTER DELETE ON integrations
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION member_sources_cascade_from_integrations();

CREATE TRIGGER member_sources_cascade AFTER DELETE ON audiences
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION member_sources_cascade_from_audiences();
