-- pledgesync: two costs of a member_sources row that every record of a sync pays for nothing.
--
-- Measured per row in PostgreSQL's own statement time (pg_stat_statements), writing 184,000
-- sources in groups of 800 as a sink does: 7.7 µs before this migration, 6.0 µs after.
--
-- 1. The email check: `email = lower(btrim(email))` ran lower() under the database's collation
--    (a locale-aware conversion of every character) once per row, and still cost 0.9 µs a row
--    under "C". A source's email is always the key of the member row that the same transaction
--    upserted or found (the sink writes the two from the same normalised email), and
--    audience_members keeps the full check, so the source's copy needs only to be non-empty.
-- 2. The email compares bytewise (COLLATE "C"): the index that finds a member's sources compared
--    emails under the database's collation, about seventeen locale-aware comparisons per insert.
--    Emails are matched by equality only, and equality is the same under either collation. The
--    index now also covers removed sources, so the "where did this member come from" lookup,
--    which lists them too, uses it instead of a scan.
--
-- A hash index on the email alone was cheaper still (4.7 µs). With it, the incremental benchmark
-- (2,000 changed records right after a first sync of 200,000) took 0.3-0.4 s instead of 0.13:
-- with one equality to estimate and no statistics yet, the planner costed the orphan check past
-- PostgreSQL's JIT thresholds, and compiling it took 150 ms. The store's sessions now run with
-- JIT off (crates/store/src/db.rs), which took that run back to 0.12-0.14 s even with the hash
-- index. The B-tree stays: estimated on both columns it keeps plans in proportion on tables
-- without statistics, and the hash index's 1.3 µs a source is about 2 % of a sync.

ALTER TABLE member_sources
    DROP CONSTRAINT member_sources_email_check;

DROP INDEX member_sources_by_member;

ALTER TABLE member_sources
    ALTER COLUMN email TYPE text COLLATE "C",
    ADD CONSTRAINT member_sources_email_check CHECK (email <> '');

CREATE INDEX member_sources_by_member ON member_sources (audience_id, email);
