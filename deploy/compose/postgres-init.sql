-- The compose stack's second database, Synapse's (the first, dm3_bridge, is POSTGRES_DB).
-- Synapse wants the C collation (its documentation, "Using Postgres"); template0 allows it.
CREATE DATABASE synapse TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
