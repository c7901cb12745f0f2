-- Every job payload names its kind (docs/engine.md, "Job payloads"; `src/engine/job.rs`):
--   inbox:  {"kind":"envelope","receiver":…,"sender":…,"message_hash":…,"envelope":…}
--   outbox: {"kind":"inbound","network":"<network>","item":<what the connector received>}
--           {"kind":"report","report":<the failure report>}
-- Before, an outbox payload was told apart by trying to read it as a report, then as an item,
-- and an item's network was the prefix of its conversation (`<network>:<conversation>`). The
-- rows queued then are rewritten here the same way they were read.
--
-- The old payloads are serde_json's compact output, each a JSON object that starts with `{"`,
-- so the tag is spliced in as text: every byte of the old payload is kept as written (no JSON
-- is re-encoded). A report was `{"report":…}`; an item `{"event":…}`, `{"portal_request":…}` or
-- `{"unbridgeable":…}`. Done jobs have no payload (''), and keep none.
UPDATE bridge_jobs
SET payload = '{"kind":"envelope",' || substr(payload, 2)
WHERE queue = 'inbox' AND payload LIKE '{"%';

UPDATE bridge_jobs
SET payload = '{"kind":"report",' || substr(payload, 2)
WHERE queue = 'outbox' AND payload LIKE '{"report":%';

UPDATE bridge_jobs
SET payload = '{"kind":"inbound","network":"' || substr(conversation, 1, instr(conversation, ':') - 1)
    || '","item":' || payload || '}'
WHERE queue = 'outbox' AND payload LIKE '{"%' AND payload NOT LIKE '{"kind":%';
