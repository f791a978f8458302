-- Why two contacts were merged (`MergeCause` as JSON: `{"type": "api"}`, or `{"type":
-- "flow_answer", …}` when a web chat visitor gave a customer's address in a flow). NULL
-- for the merges made before: all of them were asked through the API.
ALTER TABLE contact_merges ADD COLUMN cause TEXT;
