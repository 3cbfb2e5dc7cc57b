-- the replication role of PGO (Crunchy Data), created only if it is missing
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '_crunchyrepl') THEN
    CREATE ROLE _crunchyrepl WITH LOGIN REPLICATION;
  END IF;
END
$$;

-- the functions _crunchyrepl runs when rewinding a former primary (pg_rewind)
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO _crunchyrepl;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO _crunchyrepl;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO _crunchyrepl;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO _crunchyrepl;
