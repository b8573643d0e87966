-- storekeeper: atomic compare-and-swap for supabase:// stores (invariant 1 of docs/design-notes.md).
--
-- Supabase Storage has no atomic conditional upload (its create-only check is an INSERT in a
-- transaction that is rolled back; completing an upload always upserts). Every conditional write
-- of a supabase:// store is therefore decided here first, by one conditional statement:
--   create-only:  INSERT ... ON CONFLICT DO NOTHING        (exactly one writer gets the row)
--   compare-and-swap: UPDATE ... WHERE etag = <expected>  (exactly one writer moves it)
-- A row with etag NULL is claimed: its writer is uploading and finishes by setting the new etag.
-- A claim past lease_until (its writer crashed) is settled from Storage by the next writer.
-- Applied by `storekeeper supabase setup`; safe to run again.

CREATE SCHEMA IF NOT EXISTS storekeeper;

CREATE TABLE IF NOT EXISTS storekeeper.object_versions (
    bucket      text        NOT NULL,
    key         text        NOT NULL,
    etag        text,                       -- NULL while claimed by a writer
    claim       uuid,                       -- the claiming writer's token
    lease_until timestamptz,                -- a claim older than this may be settled by others
    generation  bigint      NOT NULL DEFAULT 1,  -- bumped by every change (guards resyncs)
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, key),
    CHECK ((etag IS NULL) = (claim IS NOT NULL))
);

COMMENT ON TABLE storekeeper.object_versions IS
    'storekeeper: the etag each conditionally written supabase:// key is known to have (compare-and-swap)';

-- Not for the API roles: only the direct connection of SUPABASE_DB_URL uses this schema.
REVOKE ALL ON SCHEMA storekeeper FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA storekeeper FROM PUBLIC;
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON SCHEMA storekeeper FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA storekeeper FROM %I', r);
        END IF;
    END LOOP;
END
$$;
