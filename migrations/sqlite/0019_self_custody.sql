-- Gateway mode (docs/gateway.md section 2): an identity is custodial (the node holds its
-- wallet, sealed in identity_keys) or self-custody (the user holds it; the node keeps only the
-- signed profile and the address, and no identity_keys row). For a self-custody row,
-- `key_version` is the last version the node held (0 if none), so a return to custody starts
-- above it and no sealed key's label is reused. Every existing identity is custodial.
ALTER TABLE identities ADD COLUMN custody TEXT NOT NULL DEFAULT 'custodial'
    CHECK (custody IN ('custodial', 'self'));
