-- Email addresses are now matched without regard to case (`Ana@Example.com` is
-- `ana@example.com`). Stored ones are lowered, except where two contacts already hold two
-- spellings of one address: those stay as they are, for the tenant to merge.
UPDATE identities SET address = lower(address)
WHERE channel = 'email'
  AND address <> lower(address)
  AND NOT EXISTS (
      SELECT 1 FROM identities other
      WHERE other.tenant_id = identities.tenant_id
        AND other.channel = 'email'
        AND lower(other.address) = lower(identities.address)
        AND other.address <> identities.address
  );
